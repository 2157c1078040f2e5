"""Any early-exit model on an emulated Cortex-M, end to end: the TFLM libraries (release for the headline counts,
profiled for the per-layer breakdown), the early-exit firmware and the baseline's built from the same exported
sources (`edge.sources`), both run on the same samples and checked sample by sample against the Python int8
runtime (`edge.board_check`). The `firmware` command and `api.firmware` both come here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import files, paths
from ..errors import ModelError, ModelFileError, TrecxError
from ..evaluation import signals
from ..evaluation.calibrate import LABEL_FREE, OUTPUTS_FLOAT, Calibration
from ..evaluation.monitor import Monitor, certified_level
from . import board_check, ops, sources, toolchain
from .export import TFLiteRunner
from .runtime import MultiExitRuntime, exit_probs, exit_quantization

log = logging.getLogger("trecx.firmware")


def libraries(cpu: str, kernels: str, third_party: Path | None = None, tflm: Path | None = None, jobs: int = 2,
              profile: bool = True) -> dict[bool, dict]:
    """The TFLM library builds a record needs: release (False) and, with `profile`, release_with_logs (True)."""
    toolchain.check_tools()
    tree = toolchain.tflm_source(third_party, tflm)
    kinds = (False, True) if profile else (False,)
    return {p: toolchain.library(tree, cpu, kernels, jobs, profiled=p) for p in kinds}


def check_rhos(rhos: list[float | None] | float | None, segments: int) -> list[float | None]:
    """One threshold per early exit, from a list (None: never), one shared value, or None (the full model
    runs); a one-line error when a list has the wrong length."""

    exits = segments - 1
    if rhos is None or np.ndim(rhos) == 0:
        return [None if rhos is None else float(rhos)] * exits
    rhos = [None if r is None else float(r) for r in rhos]
    if len(rhos) != exits:
        raise TrecxError(f"{segments} graphs have {exits} early exit(s) but {len(rhos)} threshold(s) were given: "
                         f"{rhos}")
    return rhos


def thresholds(rho, exits: int) -> list[float]:
    """One threshold per early exit (inf: never exits) from a shared rho, a list, None (never exit: the full
    model runs), or a Calibration (its certified thresholds; nothing certified: never exit). A calibration of
    the float Keras outputs is refused: it does not cover the int8 graphs that will run."""

    if isinstance(rho, Calibration):
        if rho.outputs == OUTPUTS_FLOAT:
            raise ModelError("this calibration certified the float Keras outputs, not the int8 graphs that will run: "
                             "calibrate_exit(graphs, ...) certifies the graphs themselves")
        rho = rho.thresholds(exits)
    return [float("inf") if r is None else r for r in check_rhos(rho, exits + 1)]


def save_segments(graphs: list[bytes], out: Path, baseline: bytes | None = None) -> list[Path]:
    """Write the segments as out/segment_<i>.tflite (and baseline.tflite): the folder `read_segments`,
    `firmware --graphs-dir` and `export_sources --graphs-dir` read."""

    written = []
    for name, g in [*((f"segment_{i}.tflite", g) for i, g in enumerate(graphs)),
                    *((("baseline.tflite", baseline),) if baseline is not None else ())]:
        with files.atomic(out / name) as tmp:
            tmp.write_bytes(g)
        written.append(out / name)
    return written


def firmware(graphs: list[bytes], rho, x: np.ndarray, baseline: bytes, cpu: str = "cortex-m4",
             kernels: str = "cmsis_nn", costs: list[float] | None = None, baseline_mflops: float | None = None,
             profile: bool = True, signal=None) -> dict:
    """The early-exit firmware of `graphs` at `rho` (as in `thresholds`) and the `baseline` graph's, built from
    the exported sources, run on an emulated `cpu` on the float inputs `x` and checked against the Python int8
    runtime: `record` with the libraries built (once) from TFLM's sources (`toolchain.tflm_source`)."""

    return record(list(graphs), thresholds(rho, len(graphs) - 1), x, baseline, libraries(cpu, kernels, profile=profile),
                  cpu, paths.cache_dir() / "firmware", costs, baseline_mflops, signal=signal_of(rho, signal))


def parse_rhos(text: str) -> list[float | None] | float | None:
    """`--rhos`: one threshold for every exit ("0.9"), one per exit ("0.9,0.8"; an empty one never fires), or ""
    (none: the full model runs)."""
    if not text:
        return None
    rhos = [float(r) if r.strip() else None for r in text.split(",")]
    return rhos[0] if len(rhos) == 1 else rhos


def read_segments(folder: Path) -> tuple[list[Path], list[bytes]]:
    """The segment_<i>.tflite graphs of a folder (what `api.save_graphs` writes), in order, and their contents."""

    found = sorted(folder.glob("segment_*.tflite"), key=lambda p: int(p.stem.split("_")[1].split(".")[0]))
    if not found:
        raise ModelFileError(f"{folder} holds no segment_<i>.tflite graphs (api.save_graphs writes them)")
    return found, [files.read_tflite(p) for p in found]


def record(segments: list[bytes], rhos: list[float | None], x: np.ndarray, baseline: bytes, libs: dict[bool, dict],
           cpu: str, work: Path, cum_mflops: list[float] | None = None, base_mflops: float | None = None,
           limits: tuple[int, int] = (0, 0), arena_bytes: int | None = None, timeout: float = 3600,
           signal: signals.Signal | None = None) -> dict:
    """Build, run and check the early-exit firmware of `segments` at `rhos` and the baseline's on the float
    inputs `x` (quantized by each graph's own input parameters); returns the firmware record
    (`board_check.summarize`) with the cost basis of its FLOPs cut."""
    rhos = check_rhos(rhos, len(segments))
    flops_source = "the Keras model (common.models.flops)"
    if cum_mflops is None:
        cum_mflops, base_mflops = ops.graph_mflops(segments), ops.graph_mflops([baseline])[0]
        flops_source = "2 x the MACs of the int8 graphs' convolution and dense layers"
    note = f"{len(segments) - 1} early exit(s), thresholds {rhos}"
    log.info("building and running the early-exit firmware (%d segments) and the baseline's on %d samples (%s)",
             len(segments), len(x), cpu)
    if signals.other(signal) is not None:
        note += f", exit signal {signal.name}"
    ee = board_check.on_board(segments, rhos, x, libs, cpu, work, arena_bytes, timeout, limits, note, signal)
    base = board_check.on_board([baseline], [], x, libs, cpu, work, None, timeout, limits, "the baseline")
    rec = board_check.summarize(ee, base, board_check.python_runtime(segments, rhos, x, signal),
                                board_check.python_runtime([baseline], [], x), cum_mflops, base_mflops, segments,
                                baseline)
    return {"rhos": rhos, "signal": (signal or signals.Signal()).describe(),
            "segments": board_check.segment_names(len(segments) - 1), "cpu": cpu,
            "board": toolchain.BOARDS[cpu].machine, "kernels": libs[False].get("kernels", ""),
            "flops_source": flops_source, "mflops_per_exit": cum_mflops, "baseline_mflops": base_mflops, **rec}


def reference_record(graph: bytes, x: np.ndarray, libs: dict[bool, dict], cpu: str, work: Path,
                     timeout: float = 3600) -> dict:
    """A single int8 graph (e.g. MLPerf Tiny's own reference file) on the board: its instructions per sample
    (release build), arena and memory, checked against the Python int8 runtime, and its operators' instructions
    (profiled build, when `libs` has it)."""
    run = board_check.on_board([graph], [], x, libs, cpu, work, None, timeout, note="a reference graph")
    got, want = run["release"]["samples"], board_check.python_runtime([graph], [], x)
    rec = {"samples": len(got),
           "bit_exact": all(board_check.agrees(g, w, board_check.KEYS[1:]) for g, w in zip(got, want, strict=True)),
           "compared": board_check.COMPARED,
           "instructions": float(np.mean([s["segments"][0] for s in got])),
           "arena_used_bytes": run["release"]["arena_used_bytes"], "flash_bytes": run["release"]["flash_bytes"],
           "ram_bytes": run["release"]["ram_needed_bytes"], "graph_bytes": len(graph),
           "mflops": ops.graph_mflops([graph])[0]}
    if "profiled" in run:
        rec["per_op"] = board_check.per_op(run["profiled"]["ops"][0], len(got), ops.layer_macs(graph), len(got))
    return rec


def input_range(graph: bytes) -> float:
    """The largest float value a graph's int8 input can represent: about 1 for inputs in [0, 1], 255 for pixels."""

    scale, zero = TFLiteRunner(graph).input["quantization"]
    return float((127 - zero) * scale) if scale else float("inf")


def segment_sources(segments: list[bytes], rhos, out: Path, arena_bytes: int | None = None,
                    namespace: str = "trecx_model", note: str = "", signal: signals.Signal | None = None,
                    monitor: Monitor | None = None) -> sources.Spec:
    """`edge.sources.write` with the thresholds checked: the C++ sources of a user's firmware (`note`: where the
    thresholds came from, written at the top of each generated file; `signal`: the exit signal; `monitor`: the
    field monitor, checked)."""
    return sources.write(segments, check_rhos(rhos, len(segments)), out, arena_bytes, namespace, note=note,
                         signal=signal, monitor=monitor)


def signal_of(rho, signal: signals.Signal | str | None = None) -> signals.Signal | None:
    """The exit signal to run: `signal` (a Signal, or the name of one that has nothing to fit), else the one a
    Calibration certified; a one-line error when both are given and differ (the thresholds were certified on
    the other signal's scores)."""
    signal = signals.named(signal)
    certified = rho.signal if isinstance(rho, Calibration) else None
    if signal is not None and certified is not None and signal != certified:
        raise TrecxError(f"the thresholds were certified on the {certified.name} signal's scores, not on "
                         f"{signal.name}'s: calibrate with signal={signal.name}")
    return signal if signal is not None else certified


def provenance(rho) -> str:
    """Where thresholds came from, in one line: a Calibration's certificate (budget, delta, method, samples, whose
    outputs), or "given by hand" for numbers."""
    if not isinstance(rho, Calibration):
        return "Thresholds given by hand: no certificate."
    if not rho.ok:
        return f"Nothing certified ({rho.method}, {rho.samples}): the full network runs."
    on = "" if signals.other(rho.signal) is None else f", on the {rho.signal.name} signal"
    return (f"Thresholds certified by Learn-then-Test ({rho.method}, delta {rho.delta:g}, budget "
            f"{100 * rho.max_drop:g} point(s){on}) on {rho.samples}.")


def monitor_of(rho, monitor: Monitor | None) -> Monitor | None:
    """`monitor` checked, its level filled in from a label-free Calibration (whose budget bounds the very
    disagreement the monitor watches) where none was given; a one-line ValueError when it has no level."""
    if monitor is None:
        return None
    free = isinstance(rho, Calibration) and rho.ok and rho.method == LABEL_FREE
    return monitor.checked(rho.max_drop if free else None)


def monitor_level(graphs: list[bytes], x_cal: np.ndarray, rho, delta: float = 0.05,
                  signal: signals.Signal | str | None = None) -> float | None:
    """`monitor.certified_level` of the shared threshold `rho` (a number or a Calibration) on the int8 graphs'
    outputs on TFLM over the calibration inputs `x_cal`, on the exit signal of `signal_of`."""
    rhos = thresholds(rho, len(graphs) - 1)
    if len(set(rhos)) != 1:
        raise ValueError(f"the monitor's level needs one shared threshold, got {rhos}")
    probs = exit_probs(graphs, x_cal)
    signal = signal_of(rho, signal)
    conf = None if signals.other(signal) is None else signal.scores(probs, exit_quantization(graphs))
    return certified_level(probs, list(range(1, len(graphs) + 1)), rhos[0], delta, conf)  # reads no costs


def runtime(graphs: list[bytes], rho, backend: str = "tflm", signal: signals.Signal | str | None = None,
            monitor: Monitor | None = None):
    """The batch-1 early-exit runtime over int8 graphs at `rho` (see `thresholds`) on the exit signal of
    `signal_of`, watched by `monitor` (`monitor_of`), its `provenance` set."""
    rt = MultiExitRuntime(list(graphs), thresholds(rho, len(graphs) - 1), backend=backend,
                          signal=signal_of(rho, signal), monitor=monitor_of(rho, monitor))
    rt.provenance = provenance(rho)
    return rt
