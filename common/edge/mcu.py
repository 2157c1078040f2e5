"""The early-exit firmware on an emulated Arm Cortex-M: TFLite Micro built from source (CMSIS-NN or the
reference kernels), a C++ program over the deployed int8 head, tail and baseline (`firmware/early_exit.cc`),
run in QEMU's system emulation of an MPS2 board with `-icount shift=0`, where virtual time advances 1 ns per
instruction, so the board's timer counts instructions (docs/deployment.md, "On a Cortex-M").

The TFLM tree and the libraries it builds with come from ../shared/third_party (or a TFLM checkout given by
path); each configuration (CPU, kernels) builds once into `cache()`, keyed by the tree's commit and the flags.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import string
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import paths
from common.errors import TrecxError

FIRMWARE = Path(__file__).with_name("firmware")
ARCHIVES = ("cmsis_nn", "cmsis", "flatbuffers", "gemmlowp", "ruy", "kissfft")  # + Cortex_DFP under cmsis/
TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", "make")
APT = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
KERNELS = ("cmsis_nn", "reference")


@dataclass(frozen=True)
class Board:
    """An MPS2 FPGA image QEMU emulates: where code and RAM start, and its CMSDK timer 0."""

    machine: str  # qemu-system-arm -M
    code: int  # boot address: the vector table goes there
    ram: int
    timer: int  # CMSDK APB timer 0 (the secure alias on an505)
    timer_mhz: float  # its clock: under -icount shift=0 one tick is 1000 / timer_mhz instructions


BOARDS = {"cortex-m4": Board("mps2-an386", 0x00000000, 0x20000000, 0x40000000, 25.0),
          "cortex-m33": Board("mps2-an505", 0x10000000, 0x38000000, 0x50000000, 20.0)}


class FirmwareError(TrecxError):
    """A firmware that cannot be built or run here: one line naming what is missing."""


def cache() -> Path:
    """Where TFLM trees and builds are kept: $TRECX_TFLM_CACHE, else ~/.cache/trecx/tflm, outside any clone, so
    that a fresh clone (or CI run) on the same machine reuses the minutes-long library builds."""
    import os

    return Path(os.environ.get("TRECX_TFLM_CACHE", Path.home() / ".cache" / "trecx" / "tflm"))


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise FirmwareError(f"{', '.join(missing)} not found: install them with `apt-get install {APT}` (the set-up "
                            "script does, with TRECX_MCU=1)")


def _digest(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=6).hexdigest()


def tflm_source(third_party: Path | None = None, checkout: Path | None = None) -> Path:
    """A TFLM tree with its downloads in place, extracted once into the cache from ../shared/third_party
    (or `checkout`, a user's own TFLM tree with its downloads already there, used as it is)."""
    if checkout is not None:
        if not (checkout / "tensorflow" / "lite" / "micro").is_dir():
            raise FirmwareError(f"--tflm {checkout} is not a TFLite Micro checkout (no tensorflow/lite/micro)")
        return checkout
    src = third_party or paths.REPO.parent / "shared" / "third_party"
    archive = src / "tflite-micro.tar.gz"
    if not archive.exists():
        raise FirmwareError(f"{archive} not found: give the folder of the TFLM source archives, or --tflm a checkout")
    commit = re.search(r"tflite-micro\.tar\.gz \| \S+ \| (\w+)", (src / "SOURCE.txt").read_text())
    tree = cache() / f"src_{commit.group(1)[:12] if commit else _digest(str(archive))}"
    if (tree / ".ready").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    (root,) = [p for p in tree.iterdir() if p.is_dir()]
    for p in root.iterdir():
        p.rename(tree / p.name)
    root.rmdir()
    make = tree / "tensorflow" / "lite" / "micro" / "tools" / "make"
    downloads = make / "downloads"
    downloads.mkdir(exist_ok=True)
    for name in ARCHIVES:
        with tarfile.open(src / f"{name}.tar.gz") as tar:
            tar.extractall(downloads, filter="data")
    with tarfile.open(src / "Cortex_DFP.tar.gz") as tar:
        tar.extractall(downloads / "cmsis", filter="data")
    subprocess.run(["patch", "-p1", "-s", "-i", str(make / "flatbuffers.patch")], cwd=downloads / "flatbuffers",
                   check=True)
    subprocess.run(["patch", "-p1", "-s", "-i", str(tree / "third_party" / "kissfft" / "kissfft.patch")],
                   cwd=downloads / "kissfft", check=True)
    for empty in ("gcc_embedded/bin", "pigweed"):  # Debian's toolchain on PATH; pigweed is not built from
        (downloads / empty).mkdir(parents=True, exist_ok=True)
    (tree / ".ready").write_text("ok")
    return tree


MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"


def _make_args(cpu: str, kernels: str) -> list[str]:
    args = ["TARGET=cortex_m_qemu", f"TARGET_ARCH={cpu}",
            "BUILD_TYPE=release_with_logs"]  # release strips the operator names the per-layer profile needs
    return args + ([f"OPTIMIZED_KERNEL_DIR={kernels}"] if kernels != "reference" else [])


def _env() -> dict:
    import os
    import sys

    return os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # make runs python3


def library(tree: Path, cpu: str, kernels: str, jobs: int = 2) -> dict:
    """Build (once, into the cache) libtensorflow-microlite.a for `cpu` with `kernels`; returns its compile
    flags, include folders and path."""
    if cpu not in BOARDS:
        raise FirmwareError(f"--cpu must be one of {', '.join(BOARDS)}, got '{cpu}'")
    if kernels not in KERNELS:
        raise FirmwareError(f"--kernels must be one of {', '.join(KERNELS)}, got '{kernels}'")
    check_tools()
    build = cache() / f"build_{tree.name}_{_digest(*_make_args(cpu, kernels))}_{cpu}_{kernels}"
    flags_file = build / "flags.txt"
    if not flags_file.exists():
        if not build.exists():  # make writes into its tree: each configuration builds in its own copy
            shutil.copytree(tree, build, symlinks=True)
        r = subprocess.run(["make", "-s", f"-j{jobs}", "-f", MAKEFILE, *_make_args(cpu, kernels), "microlite"],
                           cwd=build, env=_env(), capture_output=True, text=True)
        if r.returncode:
            raise FirmwareError(f"the TFLM build for {cpu}/{kernels} failed in {build}: "
                                f"{(r.stderr.strip().splitlines() or ['?'])[-1][:300]}")
        printer = build / "print_flags.mk"
        printer.write_text("print_flags:\n\t@echo CXX $(CXXFLAGS)\n\t@echo CC $(CCFLAGS)\n\t@echo INC $(INCLUDES)\n"
                           "\t@echo LIB $(MICROLITE_LIB_PATH)\n")
        r = subprocess.run(["make", "-s", "-f", MAKEFILE, "-f", str(printer), *_make_args(cpu, kernels), "print_flags"],
                           cwd=build, env=_env(), capture_output=True, text=True, check=True)
        flags_file.write_text("\n".join(line for line in r.stdout.splitlines()
                                        if line.startswith(("CXX ", "CC ", "INC ", "LIB "))))
    lines = dict(line.split(" ", 1) for line in flags_file.read_text().splitlines())
    return {"dir": build, "cxx": lines["CXX"].split(), "cc": lines["CC"].split(), "inc": lines["INC"].split(),
            "lib": build / lines["LIB"].strip()}


def resolver_calls(graphs: list[bytes]) -> list[str]:
    """The MicroMutableOpResolver calls the graphs need (`AddConv2D`, ...): each builtin op's name in CamelCase."""
    from ai_edge_litert.interpreter import Interpreter

    from common.console import quiet

    ops = set()
    for g in graphs:
        with quiet((2,)):  # LiteRT announces its XNNPACK delegate from C++
            ops |= {d["op_name"] for d in Interpreter(model_content=g)._get_ops_details()}
    return sorted("Add" + "".join(w.capitalize() if not w[0].isdigit() else w.upper() for w in op.split("_"))
                  for op in ops)


def _c_array(name: str, data: bytes) -> str:
    body = ",".join(str(b) for b in data)
    return f"alignas(16) const unsigned char {name}[{len(data)}] = {{{body}}};\n"


def _f32(x: float) -> str:
    return f"{np.float32(x)!r}".replace("np.float32(", "").rstrip(")") + "f"


@dataclass
class Program:
    """What the firmware is built from: three graphs, the exit rule and the samples (already int8)."""

    head: bytes
    tail: bytes
    baseline: bytes
    threshold: float  # rho / scale + zero of the head's exit output (inf: never exit)
    head_exit: int  # output indices in graph order
    head_features: int
    requantize: tuple | None  # (scale_out, zero_out, scale_in, zero_in) when the hand-over requantizes
    samples: np.ndarray  # (N, input bytes) int8, quantized for the head (read from a host file, not in flash)
    base_samples: np.ndarray  # the same, quantized for the baseline
    classes: int
    feature_bytes: int
    arenas: tuple[int, int, int]  # head, tail, baseline arena sizes (bytes)


def write_sources(program: Program, out: Path, timer: int) -> None:
    """model_data.h and model_data.cc of `program` in `out`, and the two sample files the firmware reads
    through semihosting (samples.bin for the head, base_samples.bin for the baseline)."""
    calls = resolver_calls([program.head, program.tail, program.baseline])
    rq = program.requantize or (1.0, 0, 1.0, 0)
    for name, rows in (("samples.bin", program.samples), ("base_samples.bin", program.base_samples)):
        (out / name).write_bytes(np.ascontiguousarray(rows, dtype=np.int8).tobytes())
    header = [
        "// Generated by common/edge/mcu.py from a deployed model: do not edit.", "#pragma once",
        "#include <cstdint>",
        f"#define TRECX_TIMER_BASE 0x{timer:08x}u",
        f"#define TRECX_NUM_OPS {len(calls)}",
        "#define TRECX_ADD_OPS(r) do { " + " ".join(f"r.{c}();" for c in calls) + " } while (0)",
        f"#define TRECX_ARENA_HEAD {program.arenas[0]}", f"#define TRECX_ARENA_TAIL {program.arenas[1]}",
        f"#define TRECX_ARENA_BASE {program.arenas[2]}",
        f"#define TRECX_SAMPLES {len(program.samples)}", f"#define TRECX_INPUT_BYTES {program.samples.shape[1]}",
        f"#define TRECX_CLASSES {program.classes}", f"#define TRECX_FEATURE_BYTES {program.feature_bytes}",
        f"#define TRECX_HEAD_EXIT {program.head_exit}", f"#define TRECX_HEAD_FEATURES {program.head_features}",
        f"#define TRECX_THRESHOLD {program.threshold!r}" if np.isfinite(program.threshold)
        else "#define TRECX_THRESHOLD 1e300",
        f"#define TRECX_REQUANTIZE {int(program.requantize is not None)}",
        f"#define TRECX_FEAT_SCALE_OUT {_f32(rq[0])}", f"#define TRECX_FEAT_ZERO_OUT {int(rq[1])}",
        f"#define TRECX_FEAT_SCALE_IN {_f32(rq[2])}", f"#define TRECX_FEAT_ZERO_IN {int(rq[3])}",
        f'#define TRECX_SAMPLES_FILE "{(out / "samples.bin").resolve()}"',
        f'#define TRECX_BASE_SAMPLES_FILE "{(out / "base_samples.bin").resolve()}"',
        "extern const unsigned char g_head[], g_tail[], g_base[];", ""]
    (out / "model_data.h").write_text("\n".join(header))
    cc = ['#include "model_data.h"', "", _c_array("g_head", program.head), _c_array("g_tail", program.tail),
          _c_array("g_base", program.baseline), ""]
    (out / "model_data.cc").write_text("\n".join(cc))


def build(program: Program, lib: dict, cpu: str, out: Path) -> Path:
    """Compile and link the firmware for `cpu` against `lib` (`library`) into out/firmware.elf."""
    board = BOARDS[cpu]
    out.mkdir(parents=True, exist_ok=True)
    write_sources(program, out, board.timer)
    inc = [f"-I{lib['dir'] / p[2:]}" if p.startswith("-I") and not Path(p[2:]).is_absolute() else p for p in lib["inc"]]
    (out / "firmware.ld").write_text(string.Template((FIRMWARE / "firmware.ld").read_text())
                                     .substitute(code=hex(board.code), ram=hex(board.ram)))
    objs = []
    for src, tool, flags in ((FIRMWARE / "early_exit.cc", "arm-none-eabi-g++", lib["cxx"]),
                             (out / "model_data.cc", "arm-none-eabi-g++", lib["cxx"]),
                             (FIRMWARE / "startup.c", "arm-none-eabi-gcc", lib["cc"])):
        obj = out / f"{src.stem}.o"
        _run([tool, *flags, "-O2", *inc, f"-I{out}", "-c", str(src), "-o", str(obj)], f"compiling {src.name}")
        objs.append(str(obj))
    elf = out / "firmware.elf"
    cpu_flags = [f for f in lib["cxx"] if f.startswith(("-mcpu", "-mthumb", "-mfloat-abi", "-mfpu", "--specs"))]
    _run(["arm-none-eabi-g++", *cpu_flags, "-nostartfiles", "-T", str(out / "firmware.ld"), "-Wl,--gc-sections",
          f"-Wl,-Map={out / 'firmware.map'}", *objs, str(lib["lib"]), "-lm", "-o", str(elf)], "linking the firmware")
    return elf


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        lines = r.stderr.splitlines()
        first = next((line for line in lines if "undefined reference" in line or ("error:" in line and
                      "collect2" not in line)), r.stderr.strip()[-300:])
        raise FirmwareError(f"{what} failed: {first[:300]}")


def memory(elf: Path) -> dict:
    """Flash (code, constants, initial data) and static RAM (data, zeroed data: the arenas) of the firmware."""
    r = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    size = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)", r.stdout, re.M)}
    flash = size.get(".text", 0) + size.get(".ARM.exidx", 0) + size.get(".data", 0)
    return {"flash_bytes": flash, "ram_bytes": size.get(".data", 0) + size.get(".bss", 0)}


def emulate(elf: Path, cpu: str, timeout: float = 1800) -> dict:
    """Run the firmware on the emulated board; returns the arenas used, per-sample records and per-op ticks
    converted to instructions."""
    board = BOARDS[cpu]
    cmd = ["qemu-system-arm", "-M", board.machine, "-display", "none", "-serial", "null", "-monitor", "null",
           "-icount", "shift=0", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"the firmware ran over {timeout:.0f} s on {board.machine} (no exit): {elf}") from None
    per_tick = 1000.0 / board.timer_mhz
    lines = r.stdout.splitlines()
    if r.returncode or "D" not in lines:
        err = next((line for line in lines if line.startswith("E ")), f"exit code {r.returncode}")
        hint = " (the tensor arena is too small)" if "arena" in err else ""
        raise FirmwareError(f"the firmware on {board.machine} stopped early: {err}{hint}; {elf}")
    out: dict = {"samples": [], "ops": {"head": [], "tail": [], "baseline": []}}
    for line in lines:
        f = line.split()
        if f[0] == "A":
            out["arena_used_bytes"] = dict(zip(("head", "tail", "baseline"), map(int, f[1:]), strict=True))
        elif f[0] == "S":
            out["samples"].append({"exit": bool(int(f[2])), "label": int(f[3]), "base_label": int(f[4]),
                                   "head": int(f[5]) * per_tick, "tail": int(f[6]) * per_tick,
                                   "baseline": int(f[7]) * per_tick})
        elif f[0] == "P":
            out["ops"][f[1]].append({"index": int(f[2]), "op": f[3], "instructions": int(f[4]) * per_tick})
    out["instructions_per_tick"] = per_tick
    return out
