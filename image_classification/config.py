"""Configs of ResNet-8 on CIFAR-10: the default recipe and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass

from common import paths
from common.training import TrainConfig

BASELINE = paths.REPO / "pretrained" / "image_classification" / "baseline.keras"  # our trained baseline


@dataclass
class Config(TrainConfig):
    """MLPerf Tiny recipe (Adam 1e-3 x0.99 per epoch, batch 32, rotation/shift/flip, L2 1e-4 in the
    builder), cut to the CPU budget of about 130 epochs in 90 minutes."""

    epochs: int = 130  # the paper trained 500 epochs on a GPU
    val_fraction: float = 0.1  # carved out of train, stratified
    test_fraction: float = 0.1  # carved out of train when the data has no test split
    rotation: float = 15 / 360  # random rotation, fraction of a turn (MLPerf: 15 degrees)
    shift: float = 0.1  # random shift, fraction of the size
    flip: bool = True  # random horizontal flip


PRESETS = {
    "default": Config(),
    "cosine": Config(lr_schedule="cosine", batch_size=64, lr=2e-3),
    "smoke": Config(epochs=2, steps_per_epoch=3, batch_size=16),
    # T-RecX variants warm-started from our trained baseline: heads first, then jointly
    "finetune": Config(init_from=str(BASELINE), head_epochs=3, head_lr=3e-3, epochs=20, lr=2e-4,
                       lr_schedule="cosine", batch_size=64),
}
