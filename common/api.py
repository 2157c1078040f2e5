"""The public API: T-RecX on any single-input Keras classifier (docs/api.md). Installed, every name here is also
`trecx.<name>`; each only hands over to the library module that does the work.

    import trecx
    model = trecx.attach_exit(my_cnn, after="block_3_relu")            # the paper's EE block (+ EV assist)
    trecx.train_exit(model, train_ds, val_ds, epochs=20, w_ee=0.5)      # joint loss, EE->EV weight copy
    costs = trecx.exit_costs(model)                                     # MFLOPs to each exit
    graphs = trecx.export_int8(model, x_calibration)                    # int8 graphs split at the exit
    cal = trecx.calibrate_exit(graphs, x_cal, y_cal, base_right)        # rho with a guarantee, on what will run
    gate = trecx.fit_signal(graphs, x_val, signal="gate")               # another exit signal, fitted on validation
    cal = trecx.calibrate_exit(graphs, x_cal, y_cal, base_right, signal=gate)
    runtime = trecx.runtime(graphs, cal); runtime(x_cal[0]).exit        # "early_exit" or "final"
    level = trecx.monitor_level(graphs, x_cal, cal)                     # what a field monitor watches
    runtime = trecx.runtime(graphs, cal, monitor=trecx.Monitor(level=level))  # audits, alarm, fallback
    trecx.export_sources(graphs, cal, "my_firmware/")                   # C++ for your own TFLM firmware
    rec = trecx.firmware(graphs, cal, x_test, baseline_graph)           # on an emulated Cortex-M4
    trecx.exit_costs(model, cost="cortex-m4/cmsis_nn", x=x_train[:64])  # + instructions per exit on the board
    found = trecx.place_exits(my_cnn, train_ds, (x_val, y_val), cost="cortex-m4/cmsis_nn", cost_x=x_train[:64])
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from .edge import board, export
from .edge.certify import calibrate_exit, fit_signal
from .edge.costs import cost_vector, exit_costs
from .edge.runtime import MultiExitRuntime
from .errors import ModelError
from .evaluation.calibrate import Calibration
from .evaluation.evaluate import exit_probs as outputs
from .evaluation.monitor import Monitor
from .models.attach import attach_exit
from .models.graph import classifier, keyed
from .studies.placement import place
from .train.training import train_exit

__all__ = ["Calibration", "ModelError", "Monitor", "attach_exit", "calibrate_exit", "classifier", "cost_vector",
           "exit_costs", "export_int8", "export_sources", "firmware", "fit_signal", "monitor_level", "outputs",
           "place_exits", "runtime", "save_graphs", "thresholds", "train_exit"]


def export_int8(model: keras.Model, calibration_x: np.ndarray, pooling: str = "mean") -> list[bytes]:
    """Full-integer int8 TFLite graphs of the model split at its exits (`edge.export.export_segments`, the path
    `deploy` takes): for one exit, the head (input -> early exit + feature map) and the tail (feature map ->
    final); for k exits, k + 1 segments; a baseline, one graph. `calibration_x`: training inputs."""
    return export.export_segments(keyed(model)[0], calibration_x, pooling)


def place_exits(model: keras.Model, train_ds, cal: tuple, k: tuple[int, ...] = (1, 2, 3), cost: str = "flops",
                test: tuple | None = None, **options):
    """Where exits should go on `model` (a baseline classifier) for a cost basis: `studies.placement.place`
    (docs/placement.md); `options`: widths, taps, budgets, epochs, beam, cost_x (training inputs, for a device
    cost), ... Returns the `Placement`; train the winner with `attach_exit` + `train_exit`."""
    return place(model, train_ds, cal, test, ks=tuple(k), cost=cost, **options)


def thresholds(rho, exits: int) -> list[float]:
    """One threshold per early exit from a shared `rho`, a list, None (never exit) or an int8 Calibration."""
    return board.thresholds(rho, exits)


def runtime(graphs: list[bytes], rho, backend: str = "tflm", signal=None, monitor: Monitor | None = None
            ) -> MultiExitRuntime:
    """The batch-1 early-exit runtime over the int8 graphs of `export_int8`: leaves at the first exit whose max
    softmax is >= its threshold (`rho` as in `thresholds`: the Calibration of `calibrate_exit(graphs, ...)`
    gives the thresholds certified on these graphs, on TFLM). `backend`: "tflm" (the kernels the firmware is
    checked against) or "litert" (XNNPACK: faster on a PC, its int8 outputs may differ by a few steps).
    `signal`: the exit signal (a name, or a fitted Signal); by default the one the Calibration certified.
    `monitor`: a field monitor (`Monitor`, docs/field.md) that audits a fraction of the samples against the final
    exit and falls back after an alarm; its level from `monitor_level`, or a label-free Calibration's budget. Each
    Prediction then carries its `status` and `audited`; the runtime's `monitor.state` holds the counters."""
    return board.runtime(graphs, rho, backend, signal, monitor)


def monitor_level(graphs: list[bytes], x_cal: np.ndarray, rho, delta: float = 0.05) -> float | None:
    """The disagreement level a field monitor watches for the shared threshold `rho` (a number or a certified
    Calibration) of these int8 graphs, certified label-free on the calibration inputs `x_cal` on TFLM
    (`evaluation.monitor.certified_level`): whichever certificate chose `rho`, with probability >= 1 - delta the
    disagreement with the final exit at `rho` is within it. None: no level of `monitor.LEVELS` certifies it."""
    return board.monitor_level(list(graphs), x_cal, rho, delta)


def save_graphs(graphs: list[bytes], out, baseline: bytes | None = None) -> list[Path]:
    """Write the segments as out/segment_<i>.tflite (and baseline.tflite): the folder `firmware --graphs-dir`
    and `export_sources --graphs-dir` read."""
    return board.save_segments(list(graphs), Path(out), baseline)


def export_sources(graphs: list[bytes], rho, out, arena_bytes: int | None = None, namespace: str = "trecx_model",
                   signal=None, monitor: Monitor | None = None):
    """C++ sources for your own firmware (docs/deployment.md, "In your own firmware"): the graphs and thresholds
    (`rho` as in `runtime`) in trecx_model.h/.cc beside the early-exit runner trecx_runner.h/.cc
    (`edge.sources.Spec` says what they hold; the files' first line says where the thresholds came from);
    `signal` as in `runtime`: another signal than max softmax is computed in the runner from integer tables;
    `monitor` as in `runtime`: the runner audits, bets and falls back exactly as the Python runtime does."""
    return board.segment_sources(list(graphs), board.thresholds(rho, len(graphs) - 1), Path(out), arena_bytes,
                                 namespace, board.provenance(rho), board.signal_of(rho, signal),
                                 board.monitor_of(rho, monitor))


def firmware(graphs: list[bytes], rho, x: np.ndarray, baseline: bytes, cpu: str = "cortex-m4",
             kernels: str = "cmsis_nn", costs: list[float] | None = None, baseline_mflops: float | None = None,
             profile: bool = True, signal=None) -> dict:
    """The early-exit firmware and the baseline's on an emulated Cortex-M, checked against the Python int8
    runtime (`edge.board.firmware`: the record of `python -m common firmware`). Needs the Arm toolchain and QEMU
    (installed with apt on first use where possible) and TFLM's sources ($TRECX_THIRD_PARTY or $TRECX_TFLM)."""
    return board.firmware(graphs, rho, x, baseline, cpu, kernels, costs, baseline_mflops, profile, signal)
