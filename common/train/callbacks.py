"""Training callbacks of the T-RecX method."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras


class EVWeightTransfer(keras.callbacks.Callback):
    """Copy the EE depthwise kernel into the EV depthwise kernel after every batch, for the first
    `until_fraction` of the epochs; afterwards the EV layer trains freely.

    The EV depthwise conv is as wide as the EE depthwise conv (half the EE block's width), so the
    kernel copies whole; a narrower EV layer would take the first channels.
    """

    def __init__(self, ee_layer: str = "early_exit", ev_layer: str = "ev_assist", until_fraction: float = 0.8,
                 total_epochs: int | None = None):
        super().__init__()
        self.ee_layer, self.ev_layer, self.until_fraction = ee_layer, ev_layer, until_fraction
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
        src = self.model.get_layer(self.ee_layer).depthwise.kernel
        dst = self.model.get_layer(self.ev_layer).depthwise.kernel
        dst.assign(src[:, :, : dst.shape[2], :])
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
