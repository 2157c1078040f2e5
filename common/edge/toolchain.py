"""The early-exit firmware on an emulated Arm Cortex-M: TFLite Micro built from source (CMSIS-NN or the
reference kernels), the exported sources of a model (`edge.sources`) with a benchmark main (`firmware/bench.cc`),
run in QEMU's system emulation of an MPS2 board with `-icount shift=0`, where virtual time advances 1 ns per
instruction, so the board's timer counts instructions (docs/deployment.md, "On a Cortex-M").

The TFLM tree and the libraries it builds with come from its source archives ($TRECX_THIRD_PARTY, or
../shared/third_party beside the checkout) or a TFLM checkout ($TRECX_TFLM, or given by path); each
configuration (CPU, kernels) builds once into `cache()`, keyed by the tree's commit and the flags.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import string
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..console import quiet
from ..errors import TrecxError

log = logging.getLogger("trecx.firmware")

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
    flash_bytes: int = 4 << 20  # what firmware.ld gives code and RAM (the FPGA images' SSRAM)
    ram_bytes: int = 4 << 20


BOARDS = {"cortex-m4": Board("mps2-an386", 0x00000000, 0x20000000, 0x40000000, 25.0),
          "cortex-m33": Board("mps2-an505", 0x10000000, 0x38000000, 0x50000000, 20.0)}


class FirmwareError(TrecxError):
    """A firmware that cannot be built or run here: one line naming what is missing."""


def cache() -> Path:
    """Where TFLM trees and builds are kept: $TRECX_TFLM_CACHE, else ~/.cache/trecx/tflm, outside any clone, so
    that a fresh clone (or CI run) on the same machine reuses the minutes-long library builds."""
    return Path(os.environ.get("TRECX_TFLM_CACHE", Path.home() / ".cache" / "trecx" / "tflm"))


def check_tools() -> None:
    """The Arm toolchain and QEMU, installed with apt the first time a firmware needs them where that can be done
    (as root, with apt-get, unless TRECX_MCU=0: about a minute); else a one-line error naming the packages."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and os.environ.get("TRECX_MCU", "1") != "0" and shutil.which("apt-get") and os.geteuid() == 0:
        log.info("installing the Cortex-M toolchain and QEMU with apt (once, about a minute): %s", APT)
        install = ["apt-get", "install", "-y", "-q", *APT.split()]
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (install, ["apt-get", "update", "-q"], install):  # an old package list: update, then again
            done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
            if done and cmd is install:
                break
        missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise FirmwareError(f"{', '.join(missing)} not found: install them with `apt-get install {APT}`")


def _digest(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=6).hexdigest()


def tflm_source(third_party: Path | None = None, checkout: Path | None = None) -> Path:
    """A TFLM tree with its downloads in place, extracted once into the cache from the source archives in
    `third_party` (default `paths.third_party_dir()`: $TRECX_THIRD_PARTY, or ../shared/third_party beside the
    checkout), or `checkout` ($TRECX_TFLM), a user's own TFLM tree with its downloads already there, used as it is."""
    checkout = checkout or (Path(os.environ["TRECX_TFLM"]) if os.environ.get("TRECX_TFLM") else None)
    if checkout is not None:
        if not (checkout / "tensorflow" / "lite" / "micro").is_dir():
            raise FirmwareError(f"--tflm {checkout} is not a TFLite Micro checkout (no tensorflow/lite/micro)")
        return checkout
    src = third_party or paths.third_party_dir()
    if src is None:
        raise FirmwareError("TFLite Micro's sources are not given: set TRECX_THIRD_PARTY (or --third-party) to the "
                            "folder of its source archives, or TRECX_TFLM (--tflm) to a TFLM checkout "
                            "(docs/deployment.md, \"TFLite Micro's sources\")")
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


BUILD_TYPES = {False: "release", True: "release_with_logs"}  # profiled: release strips the profiler and op names


def _make_args(cpu: str, kernels: str, profiled: bool = False) -> list[str]:
    args = ["TARGET=cortex_m_qemu", f"TARGET_ARCH={cpu}", f"BUILD_TYPE={BUILD_TYPES[profiled]}"]
    return args + ([f"OPTIMIZED_KERNEL_DIR={kernels}"] if kernels != "reference" else [])


def _env() -> dict:

    return os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # make runs python3


def library(tree: Path, cpu: str, kernels: str, jobs: int = 2, profiled: bool = False) -> dict:
    """Build (once, into the cache) libtensorflow-microlite.a for `cpu` with `kernels`, as a user's release
    firmware would (`profiled`: release_with_logs, whose interpreter reports each operator to a profiler);
    returns its compile flags, include folders, path and whether it is profiled."""
    if cpu not in BOARDS:
        raise FirmwareError(f"--cpu must be one of {', '.join(BOARDS)}, got '{cpu}'")
    if kernels not in KERNELS:
        raise FirmwareError(f"--kernels must be one of {', '.join(KERNELS)}, got '{kernels}'")
    check_tools()
    args = _make_args(cpu, kernels, profiled)
    build = cache() / f"build_{tree.name}_{_digest(*args)}_{cpu}_{kernels}{'_profiled' if profiled else ''}"
    flags_file = build / "flags.txt"
    if not flags_file.exists():
        if not build.exists():  # make writes into its tree: each configuration builds in its own copy
            shutil.copytree(tree, build, symlinks=True)
        r = subprocess.run(["make", "-s", f"-j{jobs}", "-f", MAKEFILE, *args, "microlite"],
                           cwd=build, env=_env(), capture_output=True, text=True)
        if r.returncode:
            raise FirmwareError(f"the TFLM build for {cpu}/{kernels} failed in {build}: "
                                f"{(r.stderr.strip().splitlines() or ['?'])[-1][:300]}")
        printer = build / "print_flags.mk"
        printer.write_text("print_flags:\n\t@echo CXX $(CXXFLAGS)\n\t@echo CC $(CCFLAGS)\n\t@echo INC $(INCLUDES)\n"
                           "\t@echo LIB $(MICROLITE_LIB_PATH)\n")
        r = subprocess.run(["make", "-s", "-f", MAKEFILE, "-f", str(printer), *args, "print_flags"],
                           cwd=build, env=_env(), capture_output=True, text=True, check=True)
        flags_file.write_text("\n".join(line for line in r.stdout.splitlines()
                                        if line.startswith(("CXX ", "CC ", "INC ", "LIB "))))
    lines = dict(line.split(" ", 1) for line in flags_file.read_text().splitlines())
    return {"dir": build, "cxx": lines["CXX"].split(), "cc": lines["CC"].split(), "inc": lines["INC"].split(),
            "lib": build / lines["LIB"].strip(), "profiled": profiled, "build_type": BUILD_TYPES[profiled],
            "cpu": cpu, "kernels": kernels}


def resolver_calls(graphs: list[bytes]) -> list[str]:
    """The MicroMutableOpResolver calls the graphs need (`AddConv2D`, ...): each builtin op's name in CamelCase."""
    from ai_edge_litert.interpreter import Interpreter

    ops = set()
    for g in graphs:
        with quiet((2,)):  # LiteRT announces its XNNPACK delegate from C++
            ops |= {d["op_name"] for d in Interpreter(model_content=g)._get_ops_details()}
    return sorted("Add" + "".join(w.capitalize() if not w[0].isdigit() else w.upper() for w in op.split("_"))
                  for op in ops)


def includes(lib: dict) -> list[str]:
    """The -I flags a source needs to compile against `lib` (`library`), relative ones made absolute: what a
    user's own build passes for the exported sources too."""
    return [f"-I{lib['dir'] / p[2:]}" if p.startswith("-I") and not Path(p[2:]).is_absolute() else p
            for p in lib["inc"]]


def build(sources: Path, lib: dict, cpu: str, out: Path, samples: int, samples_file: Path) -> Path:
    """Compile the exported sources (`edge.sources.write`: trecx_model + trecx_runner) with the benchmark main
    (`firmware/bench.cc`, reading `samples` int8 inputs from `samples_file` through semihosting) and link them
    for `cpu` against `lib` (`library`; a profiled one also prints each operator) into out/firmware.elf."""
    board = BOARDS[cpu]
    out.mkdir(parents=True, exist_ok=True)
    inc = includes(lib)
    (out / "firmware.ld").write_text(string.Template((FIRMWARE / "firmware.ld").read_text())
                                     .substitute(code=hex(board.code), ram=hex(board.ram)))
    defines = [f"-DTRECX_TIMER_BASE=0x{board.timer:08x}u", f"-DTRECX_PROFILE={int(lib['profiled'])}",
               f"-DTRECX_SAMPLES={samples}", f'-DTRECX_SAMPLES_FILE="{samples_file.resolve()}"']
    objs = []
    shutil.copyfile(FIRMWARE / "bench.cc", out / "bench.cc")  # beside nothing: its includes resolve to `sources`
    for src, tool, flags in ((sources / "trecx_model.cc", "arm-none-eabi-g++", lib["cxx"]),
                             (sources / "trecx_runner.cc", "arm-none-eabi-g++", lib["cxx"]),
                             (out / "bench.cc", "arm-none-eabi-g++", [*lib["cxx"], *defines]),
                             (FIRMWARE / "startup.c", "arm-none-eabi-gcc", lib["cc"])):
        obj = out / f"{src.stem}.o"
        _run([tool, *flags, "-O2", *inc, f"-I{sources}", "-c", str(src), "-o", str(obj)], f"compiling {src.name}")
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
    """Flash (code, constants, initial data) and static RAM (data, zeroed data: the arena among them) of the
    firmware."""
    r = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    size = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)", r.stdout, re.M)}
    flash = size.get(".text", 0) + size.get(".ARM.exidx", 0) + size.get(".data", 0)
    return {"flash_bytes": flash, "ram_bytes": size.get(".data", 0) + size.get(".bss", 0)}


def check_fits(mem: dict, flash_limit: int, ram_limit: int, what: str) -> None:
    """A one-line FirmwareError when the firmware is larger than the board's flash or RAM, naming both sizes."""
    for kind, limit in (("flash", flash_limit), ("ram", ram_limit)):
        if limit and mem[f"{kind}_bytes"] > limit:
            raise FirmwareError(f"{what} needs {mem[f'{kind}_bytes']:,} bytes of {kind.upper()} but the board has "
                                f"{limit:,} (--{kind}-limit)")


def emulate(elf: Path, cpu: str, timeout: float = 1800) -> dict:
    """Run the firmware on the emulated board; returns the arena used, each sample's exit, class and
    instructions per segment, and (a profiled firmware) each segment's operators' instructions."""
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
        hint = (" (the tensor arena is too small, or a graph does not match its spec: give a larger arena_bytes / "
                "--arena-bytes)") if "arena" in err else ""
        raise FirmwareError(f"the firmware on {board.machine} stopped early: {err}{hint}; {elf}")
    out: dict = {"samples": [], "ops": {}}
    for line in lines:
        f = line.split()
        if f[0] == "A":
            out["arena_used_bytes"], out["arena_bytes"] = int(f[1]), int(f[2])
        elif f[0] == "S":
            out["samples"].append({"exit": int(f[2]), "label": int(f[3]),
                                   "segments": [int(t) * per_tick for t in f[4:]]})
        elif f[0] == "H":  # the FNV-1a hash of the sample's output bytes (firmware/bench.cc)
            out["samples"][int(f[1])]["bytes_fnv1a"] = f[2]
        elif f[0] == "M":  # the field monitor's status, audit and statistic (hex of the double's bits)
            out["samples"][int(f[1])] |= {"status": int(f[2]), "audited": bool(int(f[3])), "statistic": f[4],
                                          "monitor": int(f[5]) * per_tick}
        elif f[0] == "C":
            out["monitor"] = dict(zip(("samples", "audits", "audited_early", "disagreements", "alarm_sample",
                                       "state_bytes"), map(int, f[1:]), strict=True))
        elif f[0] == "P":
            out["ops"].setdefault(int(f[1]), []).append({"index": int(f[2]), "op": f[3],
                                                         "instructions": int(f[4]) * per_tick})
    out["ops"] = [out["ops"].get(i, []) for i in range(len(out["samples"][0]["segments"]) if out["samples"] else 0)]
    out["instructions_per_tick"] = per_tick
    return out
