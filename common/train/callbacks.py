"""Training callbacks of the T-RecX method."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import numpy as np

from .. import files
from ..files import read_csv
from ..models import contract
from ..models.layers import ev_pairs
from .distill import student_of


class EVWeightTransfer(keras.callbacks.Callback):
    """Copy each early exit's depthwise kernel into its EV layer's depthwise kernel after every batch, for
    the first `until_fraction` of the epochs; afterwards the EV layers train freely.

    The pairs are `layers.ev_pairs` of the model (`early_exit` -> `ev_assist`, or `exit_i` ->
    `ev_assist_i`) unless given. An EV depthwise conv narrower than its exit's takes the first channels.
    """

    def __init__(self, pairs: list[tuple[str, str]] | None = None, until_fraction: float = 0.8,
                 total_epochs: int | None = None):
        super().__init__()
        self.pairs, self.until_fraction = pairs, until_fraction
        self.total_epochs = total_epochs  # the whole run's epochs when it is trained in several fit() calls
        self.active = True
        self.copies = 0

    def cutoff_epoch(self) -> int:
        """First epoch (0-based) with no more copying."""
        return round(self.until_fraction * (self.total_epochs or self.params["epochs"]))

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.active = epoch < self.cutoff_epoch()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if self.active:
            self.copy()

    def copy(self) -> None:

        model = student_of(self.model)
        for ee, ev in self.pairs or ev_pairs(model):
            src = model.get_layer(ee).depthwise.kernel
            dst = model.get_layer(ev).depthwise.kernel
            # a copy, never the source's own buffer: on JAX two variables sharing one buffer break training
            dst.assign(np.array(src)[..., : dst.shape[-2], :])  # 1-D (k, C, m), 2-D (k, k, C, m)
        self.copies += 1


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` (wall time of the epoch, validation included) to the epoch's logs, so
    that the CSV log placed after it records what each epoch cost."""

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class Promote(keras.callbacks.Callback):
    """After each epoch, rename the checkpoint that a ModelCheckpoint placed before it wrote to
    `partial` over `target`: the target is always a whole model, never one being written."""

    def __init__(self, partial: Path, target: Path):
        super().__init__()
        self.partial, self.target = partial, target

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.partial.exists():
            os.replace(self.partial, self.target)


class RawWeights(keras.callbacks.Callback):
    """At an epoch's end, put the raw weights back in the model after `ema` (a SwapEMAWeights with
    swap_on_epoch) swapped the moving averages in for the checkpoint, so that a backup after it keeps
    what training resumes from. It uses `ema`'s own epoch-start swap, which then does nothing."""

    def __init__(self, ema: keras.callbacks.SwapEMAWeights):
        super().__init__()
        self.ema = ema

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.ema.on_epoch_begin(epoch + 1)


class BackboneDrift(keras.callbacks.Callback):
    """Adds `backbone_change` to each epoch's logs: the mean absolute change of the backbone's kernels
    (exit heads and final classifier left out) since the run started. The starting kernels are saved
    once to `snapshot`, so a resumed run measures from the same warm start."""

    def __init__(self, snapshot: Path):
        super().__init__()
        self.snapshot, self.start = snapshot, None

    def _kernels(self) -> list:
        model = student_of(self.model)
        return [w for layer in model.layers if not contract.is_head(layer.name)
                and not layer.name.startswith(contract.FINAL) for w in layer.weights if "kernel" in w.path]

    def on_train_begin(self, logs=None) -> None:
        if self.start is not None:
            return
        if not self.snapshot.exists():

            with files.atomic(self.snapshot) as tmp:
                np.savez(tmp, *[np.asarray(w) for w in self._kernels()])
        with np.load(self.snapshot) as z:
            self.start = [z[f"arr_{i}"] for i in range(len(z.files))]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs is not None:
            now = self._kernels()
            total = sum(float(np.abs(np.asarray(w) - s).sum()) for w, s in zip(now, self.start, strict=True))
            logs["backbone_change"] = total / sum(s.size for s in self.start)


def best_so_far(log: Path, monitor: str, mode: str, from_epoch: int = 0) -> float:
    """Best value of `monitor` in an earlier part of this run's log (epochs from `from_epoch` on), or
    the worst possible value."""
    worst = -np.inf if mode == "max" else np.inf
    if not log.exists():
        return worst
    values = [r[monitor] for r in read_csv(log) if r.get(monitor) is not None and r["epoch"] >= from_epoch]
    return (max if mode == "max" else min)(values, default=worst)


class StudentCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that saves the student when training runs through a Distiller."""

    def set_model(self, model: keras.Model) -> None:
        super().set_model(student_of(model))


def checkpoints(out: Path, monitor: str, mode: str, from_epoch: int = 0) -> list[keras.callbacks.Callback]:
    """Keep the best model: written to a partial file, then renamed over best.keras (a kill mid-save
    never breaks it). It starts from the best value of the run's log since `from_epoch`, so neither a
    resumed run nor a later phase lets a worse epoch replace it."""
    best = best_so_far(out / "log.csv", monitor, mode, from_epoch)
    partial = out / ".best.partial.keras"
    partial.unlink(missing_ok=True)
    checkpoint = StudentCheckpoint(str(partial), monitor=monitor, mode=mode, save_best_only=True,
                                   initial_value_threshold=best if np.isfinite(best) else None)
    return [checkpoint, Promote(partial, out / "best.keras")]
