"""The early-exit firmware of a deployed model on an emulated Cortex-M (a benchmark, not a test):

    python -m common firmware --task keyword_spotting --variant trecx_plus              # Cortex-M4, CMSIS-NN
    python -m common firmware --task keyword_spotting --variant trecx_plus --cpu cortex-m33 --kernels reference

Reads what `python -m common deploy` wrote to results/<task>/deploy/<variant>/, builds TFLite Micro for the CPU
and kernels (once, cached), then a firmware holding the int8 head, tail and baseline and a seeded subset of
the test split (`--samples`), runs it in QEMU (mps2-an386 for the M4, mps2-an505 for the M33, `-icount
shift=0`), and checks every sample's exit and classes against the Python int8 runtime. Writes
results/<task>/deploy/<variant>/firmware_<cpu>_<kernels>.json: the agreement, instructions of head, tail,
early-exit firmware and baseline, the instruction cut beside the FLOPs cut on the same samples, the
per-operator and per-layer breakdown (instructions per MAC, the head's costliest layers), flash and RAM, and the
arenas used (docs/deployment.md, "On a Cortex-M"); then results/firmware.csv and firmware_targets.csv."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common import files, paths, tasks
from common.config import parse, save_run_info
from common.edge import mcu, mcu_check
from common.edge.deployment import read_graphs
from common.errors import ModelFileError
from common.evaluation import plots
from common.reporting import firmware as firmware_table

log = logging.getLogger("trecx.firmware")
# Published MLPerf Tiny v1.0 latencies of the reference models with CMSIS-NN (microTVM) on an STM32L4R5
# (Cortex-M4 at 120 MHz), in cycles (recorded in ../shared/third_party/SOURCE.txt): what the baseline's
# instructions are set beside, to give the cycles-per-instruction factor that converting would need.
MLPERF_CYCLES = {"image_classification": 46.7e6, "keyword_spotting": 12.0e6, "visual_wake_words": 36.1e6}


@dataclass
class FirmwareConfig:
    """Options of `python -m common firmware`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    variant: str = "trecx_plus"  # a deployed model: results/<task>/deploy/<variant>/
    cpu: str = "cortex-m4"  # cortex-m4 (QEMU mps2-an386) or cortex-m33 (mps2-an505)
    kernels: str = "cmsis_nn"  # cmsis_nn (CMSIS-NN, what a Cortex-M deployment uses) or reference (portable C++)
    samples: int = 100  # test samples run on the board (a seeded random subset; 0 = all)
    split_seed: int = 0  # the data split the models were trained with (and the subset's seed)
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    deploy_dir: str = ""  # "" = results/<task>/deploy/<variant>
    third_party: str = ""  # the TFLM source archives; "" = ../shared/third_party
    tflm: str = ""  # or your own TFLite Micro checkout (its downloads/ in place), used instead
    jobs: int = 2  # make jobs of the TFLM build
    timeout: int = 3600  # seconds the emulation may run


def run(cfg: FirmwareConfig) -> dict:
    task = tasks.get(cfg.task)
    mcu.check_tools()
    out = Path(cfg.deploy_dir or paths.results_dir() / cfg.task / "deploy" / cfg.variant)
    if not (out / "deploy.json").exists():
        raise ModelFileError(f"{out / 'deploy.json'} not found: run python -m common deploy --task {cfg.task} "
                             f"--variant {cfg.variant} first")
    deploy = json.loads((out / "deploy.json").read_text())
    graphs = read_graphs(out, cfg.variant, kinds=("int8",))
    x, _ = task.load(cfg.data_dir, cfg.split_seed).splits["test"]
    n_split = len(x)
    if cfg.samples and cfg.samples < len(x):  # the benchmark's rule: a seeded subset (a split may be ordered)
        x = x[np.sort(np.random.default_rng(cfg.split_seed).permutation(len(x))[:cfg.samples])]
    lib = mcu.library(mcu.tflm_source(Path(cfg.third_party) if cfg.third_party else None,
                                      Path(cfg.tflm) if cfg.tflm else None), cfg.cpu, cfg.kernels, cfg.jobs)
    build = paths.cache_dir() / "firmware" / f"{cfg.task}_{cfg.variant}_{cfg.cpu}_{cfg.kernels}"
    program = mcu_check.program(graphs, deploy["rho"], x, deploy["arena_bytes"])
    elf = mcu.build(program, lib, cfg.cpu, build)
    log.info("built %s (%s, %s); running %d samples on %s", elf, cfg.cpu, cfg.kernels, len(x),
             mcu.BOARDS[cfg.cpu].machine)
    board = mcu.emulate(elf, cfg.cpu, cfg.timeout)
    rec = mcu_check.summarize(board, mcu_check.python_runtime(graphs, deploy["rho"], x), deploy["mflops"], graphs)
    base = rec["instructions"]["baseline"]
    # the published latencies are of CMSIS-NN on a Cortex-M4: set beside that board and those kernels only
    published = MLPERF_CYCLES.get(cfg.task) if (cfg.cpu, cfg.kernels) == ("cortex-m4", "cmsis_nn") else None
    rec = {"task": cfg.task, "variant": cfg.variant, "baseline": deploy["baseline"], "rho": deploy["rho"],
           "cpu": cfg.cpu, "board": mcu.BOARDS[cfg.cpu].machine, "kernels": cfg.kernels,
           "subset": "all" if len(x) == n_split else f"{len(x)} random test samples, seed {cfg.split_seed}",
           "test_split_size": n_split, **rec, **mcu.memory(elf),
           "counted_as": f"instructions: QEMU -icount shift=0 (1 ns of virtual time per instruction), board timer "
                         f"ticks x {board['instructions_per_tick']:g}; not cycles",
           "mlperf_tiny_published_cycles": published,
           "implied_cycles_per_instruction": published / base if published else None,
           "cpi_note": "MLPerf Tiny v1.0, microTVM + CMSIS-NN on an STM32L4R5 (Cortex-M4, 120 MHz), the reference "
                       "model; our baseline is the model the task's trade-offs are measured against"}
    path = out / f"firmware_{cfg.cpu}_{cfg.kernels}.json"
    files.write_json(path, rec)
    plots.firmware_breakdown(rec, path.with_suffix(".png"), title=f"{cfg.task} {cfg.variant} on {cfg.cpu} "
                             f"({cfg.kernels}): instruction cut {rec['instruction_cut_pct']:.1f}%, FLOPs cut "
                             f"{rec['flops_cut_pct']:.1f}%")
    if (out / "benchmark.json").exists():  # beside the x86 latencies: one line per board and kernels
        bench = json.loads((out / "benchmark.json").read_text())
        bench.setdefault("mcu", {})[f"{cfg.cpu}/{cfg.kernels}"] = {
            k: rec[k] for k in ("board", "samples", "bit_exact", "exit_rate", "instruction_cut_pct", "flops_cut_pct",
                                "instruction_to_flops_cut_ratio", "instruction_to_flops_cut_ratio_ci95",
                                "instructions_per_mac", "flash_bytes", "ram_bytes", "counted_as")} | {
            "instructions": rec["instructions"]}
        files.write_json(out / "benchmark.json", bench)
    if out.parent.parent.parent == paths.results_dir():  # a shipped deployment: the cross-task table
        firmware_table.write(paths.results_dir())
    save_run_info(out / f"firmware_{cfg.cpu}_{cfg.kernels}_run", asdict(cfg) | {"tflm_build": lib["dir"].name})
    log.info("%s %s on %s/%s: %s with the Python int8 runtime on %d samples; instructions: baseline %.2f M, "
             "early exit %.2f M (exit rate %.2f): %.1f%% cut vs %.1f%% FLOPs cut (ratio %.2f); flash %d B, RAM %d B",
             cfg.task, cfg.variant, cfg.cpu, cfg.kernels, "bit-exact" if rec["bit_exact"] else "MISMATCHED",
             rec["samples"], base / 1e6, rec["instructions"]["early_exit_firmware"] / 1e6, rec["exit_rate"],
             rec["instruction_cut_pct"], rec["flops_cut_pct"], rec["instruction_to_flops_cut_ratio"] or 0,
             rec["flash_bytes"], rec["ram_bytes"])
    return rec


def main(argv: list[str] | None = None) -> dict:
    return run(parse(FirmwareConfig, None, argv, description=__doc__, required=("task",)))
