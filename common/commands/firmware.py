"""The early-exit firmware on an emulated Cortex-M (a benchmark, not a test), for a deployed task model or for
any folder of int8 segment graphs:

    python -m common firmware --task keyword_spotting --variant trecx_plus              # Cortex-M4, CMSIS-NN
    python -m common firmware --task image_classification --variant trecx2 --cpu cortex-m33 --kernels reference
    python -m common firmware --graphs-dir my_graphs --rhos 0.9,0.8 --inputs x.npy --out-dir my_firmware

A task's graphs and thresholds are what `python -m common deploy` wrote to results/<task>/deploy/<variant>/ (the
deployed rule: certified by default). A folder holds segment_0.tflite .. segment_k.tflite (what `api.save_graphs`
writes) and, optionally, baseline.tflite; `--inputs` is a .npy of float inputs. TFLM is built for the CPU and
kernels once (cached; a release build for the headline counts and a profiled one for the per-layer breakdown);
the early-exit firmware and the baseline's are built from the exported sources (`python -m common export_sources`
writes the same files), run in QEMU (`-icount shift=0`: the timer counts instructions) and checked sample by sample
against the Python int8 runtime. Writes firmware_<cpu>_<kernels>.json (+ .png) beside the graphs: bit-exact
agreement, instructions per segment, of the early-exit and the baseline firmware (and of MLPerf Tiny's own int8
file, for a task), the cut beside the FLOPs cut, the profiler's overhead, per-layer instructions per MAC, flash and
RAM of both firmwares; for a shipped deployment, results/firmware.csv and firmware_targets.csv too."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import files, paths, records, tasks
from ..config import parse, save_run_info
from ..edge import board, sources, toolchain
from ..edge import plots as board_plots
from ..edge.deployment import read_graphs, segments_of
from ..errors import ConfigError, ModelFileError
from ..evaluation import signals
from ..reporting import board as firmware_table

log = logging.getLogger("trecx.firmware")
# Published MLPerf Tiny v1.0 latencies of the reference models with CMSIS-NN (microTVM) on an STM32L4R5
# (Cortex-M4 at 120 MHz), in cycles (recorded in ../shared/third_party/SOURCE.txt): what the baseline's
# instructions are set beside, to give the cycles-per-instruction factor that converting would need.
MLPERF_CYCLES = {"image_classification": 46.7e6, "keyword_spotting": 12.0e6, "visual_wake_words": 36.1e6}
# MLPerf Tiny's own int8 files of the reference models (under the reference folder), run beside our baseline
MLPERF_INT8 = {"image_classification": "image_classification/pretrainedResnet_quant.tflite",
               "keyword_spotting": "keyword_spotting/kws_ref_model.tflite",
               "visual_wake_words": "visual_wake_words/vww_96_int8.tflite"}


@dataclass
class FirmwareConfig:
    """Options of `python -m common firmware`."""

    task: str = ""  # a deployed task model (image_classification, keyword_spotting, visual_wake_words), or:
    graphs_dir: str = ""  # a folder of int8 segment graphs (segment_0.tflite ..; baseline.tflite optional)
    rhos: str = ""  # --graphs-dir: the exits' thresholds, comma-separated (one for all, or one per exit; "" never)
    inputs: str = ""  # --graphs-dir: a .npy of float inputs (N, ...) to run
    out_dir: str = ""  # --graphs-dir: where the record goes ("" = the graphs' folder)
    variant: str = tasks.DEPLOYED  # a deployed model: results/<task>/deploy/<variant>/
    cpu: str = "cortex-m4"  # cortex-m4 (QEMU mps2-an386) or cortex-m33 (mps2-an505)
    kernels: str = "cmsis_nn"  # cmsis_nn (CMSIS-NN, what a Cortex-M deployment uses) or reference (portable C++)
    samples: int = 100  # test samples run on the board (a seeded random subset; 0 = all)
    split_seed: int = 0  # the data split the models were trained with (and the subset's seed)
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    deploy_dir: str = ""  # "" = results/<task>/deploy/<variant>
    third_party: str = ""  # the TFLM source archives; "" = $TRECX_THIRD_PARTY, else ../shared/third_party (checkout)
    tflm: str = ""  # or your own TFLite Micro checkout (its downloads/ in place), used instead; "" = $TRECX_TFLM
    profile: bool = True  # also build the profiled firmware (per-layer instructions); off: headline counts only
    mlperf: bool = True  # a task: also run MLPerf Tiny's own int8 reference file on the same samples
    arena_bytes: int = 0  # the early-exit firmware's one tensor arena (0 = every segment's apart, summed + margin)
    flash_limit: int = 0  # bytes of flash the firmware must fit (0 = the emulated board's 4 MiB)
    ram_limit: int = 0  # bytes of RAM the firmware must fit (0 = the emulated board's 4 MiB)
    jobs: int = 2  # make jobs of the TFLM build
    timeout: int = 3600  # seconds the emulation may run


def _libs(cfg: FirmwareConfig) -> dict[bool, dict]:
    return board.libraries(cfg.cpu, cfg.kernels, Path(cfg.third_party) if cfg.third_party else None,
                           Path(cfg.tflm) if cfg.tflm else None, cfg.jobs, cfg.profile)


def _subset(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The benchmark's rule: a seeded random subset (a split may be ordered)."""
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])] if n and n < len(x) else x


def folder(cfg: FirmwareConfig) -> dict:
    """The firmware of a folder of segment graphs (a user's own model)."""
    src = Path(cfg.graphs_dir)
    segs, graphs = board.read_segments(src)
    if not cfg.inputs or not Path(cfg.inputs).exists():
        raise ConfigError(f"--inputs must name a .npy of float inputs for the graphs (got '{cfg.inputs}')")
    board_src = src / "baseline.tflite"
    baseline = files.read_tflite(board_src) if board_src.exists() else graphs[0] if len(graphs) == 1 else None
    if baseline is None:
        raise ModelFileError(f"{src} has no baseline.tflite: the firmware's cut is measured against a baseline "
                             "(api.save_graphs(..., baseline=...))")

    sources.check_segments(graphs, [p.name for p in segs])
    rhos = board.parse_rhos(cfg.rhos)
    x = _subset(np.load(cfg.inputs), cfg.samples, cfg.split_seed)
    out = Path(cfg.out_dir or src)
    rec = board.record(graphs, rhos, x, baseline, _libs(cfg), cfg.cpu, paths.cache_dir() / "firmware",
                       limits=(cfg.flash_limit, cfg.ram_limit), arena_bytes=cfg.arena_bytes or None,
                       timeout=cfg.timeout)
    rec = {"graphs": [p.name for p in segs], "inputs": paths.portable(cfg.inputs), **rec}
    return _write(rec, out, cfg, f"{src.name} on {cfg.cpu} ({cfg.kernels})")


def deployed(cfg: FirmwareConfig) -> dict:
    """The firmware of a task's deployed model, at its deployed thresholds."""
    task = tasks.get(cfg.task)
    out = Path(cfg.deploy_dir or paths.results_dir() / cfg.task / "deploy" / cfg.variant)
    deploy = records.read(out, cfg.variant)  # refused in one line when missing, older or not these graphs
    graphs = read_graphs(out, cfg.variant, deploy["segments"], kinds=("int8",))
    x_all, _ = task.load(cfg.data_dir, cfg.split_seed).splits["test"]
    x = _subset(x_all, cfg.samples, cfg.split_seed)
    libs = _libs(cfg)
    names = deploy["exits"]
    rec = board.record(segments_of(graphs), deploy["rhos"], x, graphs["baseline_int8"], libs, cfg.cpu,
                       paths.cache_dir() / "firmware", [deploy["mflops"][n] for n in names],
                       deploy["mflops"]["baseline"], (cfg.flash_limit, cfg.ram_limit), cfg.arena_bytes or None,
                       cfg.timeout, signals.Signal.from_dict(deploy.get("signal")))
    if cfg.mlperf and cfg.task in MLPERF_INT8 and (paths.reference_dir() / MLPERF_INT8[cfg.task]).exists():
        ref = files.read_tflite(paths.reference_dir() / MLPERF_INT8[cfg.task])
        # its inputs in the range its own input quantization expects (VWW's file takes [0, 1], ours 0..255)
        scale = 255.0 if board.input_range(ref) < 2 <= board.input_range(graphs["baseline_int8"]) else 1.0
        rec["mlperf_int8"] = {"file": f"reference:{MLPERF_INT8[cfg.task]}", "input_divided_by": scale,
                              **board.reference_record(ref, x / scale, libs, cfg.cpu, paths.cache_dir() / "firmware",
                                                       cfg.timeout)}
        rec["baseline_vs_mlperf_int8_instructions_pct"] = 100 * (rec["instructions"]["baseline"]
                                                                 / rec["mlperf_int8"]["instructions"] - 1)
    base = rec["instructions"]["baseline"]
    published = MLPERF_CYCLES.get(cfg.task) if (cfg.cpu, cfg.kernels) == ("cortex-m4", "cmsis_nn") else None
    rec = {**deploy.stamp(), "task": cfg.task, "variant": cfg.variant, "folder": out.name,
           "baseline": deploy["baseline"],
           "pooling": deploy.get("pooling", "mean"), "threshold": deploy["threshold"],
           "subset": "all" if len(x) == len(x_all) else f"{len(x)} random test samples, seed {cfg.split_seed}",
           "test_split_size": len(x_all), **rec,
           "mlperf_tiny_published_cycles": published,
           "implied_cycles_per_instruction": published / base if published else None,
           "cpi_note": "MLPerf Tiny v1.0, microTVM + CMSIS-NN on an STM32L4R5 (Cortex-M4, 120 MHz), the reference "
                       "model; our baseline is the model the task's trade-offs are measured against"}
    rec = _write(rec, out, cfg, f"{cfg.task} {cfg.variant} on {cfg.cpu} ({cfg.kernels})")
    if out.resolve().parent.parent.parent == paths.results_dir().resolve():  # a shipped deployment: cross-task table
        try:
            firmware_table.write(paths.results_dir())
        except ModelFileError as e:  # another deployment's record is stale: its own rerun writes the table
            log.warning("results/%s not rewritten: %s", firmware_table.CSV, e)
    return rec


def _write(rec: dict, out: Path, cfg: FirmwareConfig, title: str) -> dict:
    per_tick = rec.pop("instructions_per_tick")
    more = ([f"{-rec['instruction_cut_pct']:.1f}% more instructions"] if rec["instruction_cut_pct"] < 0 else []) + (
        [f"{rec['ram_bytes'] - rec['baseline_ram_bytes']:,} B more RAM"]
        if rec.get("baseline_ram_bytes") and rec["ram_bytes"] > rec["baseline_ram_bytes"] else [])
    rec["over_baseline"] = "costs more than its baseline firmware: " + ", ".join(more) if more else ""
    rec["counted_as"] = (f"instructions: QEMU -icount shift=0 (1 ns of virtual time per instruction), board timer "
                         f"ticks x {per_tick:g}; not cycles")
    path = out / f"firmware_{cfg.cpu}_{cfg.kernels}.json"
    files.write_json(path, rec)
    if "per_layer" in rec:
        board_plots.firmware_breakdown(rec, path.with_suffix(".png"), title=f"{title}: instruction cut "
                                 f"{rec['instruction_cut_pct']:.1f}%, FLOPs cut {rec['flops_cut_pct']:.1f}%")
    save_run_info(out / f"firmware_{cfg.cpu}_{cfg.kernels}_run", asdict(cfg))
    ins = rec["instructions"]
    log.info("%s: %s with the Python int8 runtime on %d samples; instructions (release): baseline %.2f M, early "
             "exit %.2f M (exit rate %.2f): %.1f%% cut vs %.1f%% FLOPs cut; RAM %d B (baseline %d B, hand-over %d B)",
             title, "bit-exact" if rec["bit_exact"] else "MISMATCHED", rec["samples"], ins["baseline"] / 1e6,
             ins["early_exit_firmware"] / 1e6, rec["exit_rate"], rec["instruction_cut_pct"], rec["flops_cut_pct"],
             rec["ram_bytes"], rec["baseline_ram_bytes"], rec["handover_bytes"])
    return rec


def run(cfg: FirmwareConfig) -> dict:
    if bool(cfg.task) == bool(cfg.graphs_dir):
        raise ConfigError("give either --task (a deployed model) or --graphs-dir (a folder of int8 segment graphs)")
    toolchain.check_tools()
    return deployed(cfg) if cfg.task else folder(cfg)


def main(argv: list[str] | None = None) -> dict:
    return run(parse(FirmwareConfig, None, argv, description=__doc__))
