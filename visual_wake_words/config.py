"""Configs of MobileNetV1-0.25 on Visual Wake Words: the default recipe and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass

from common import paths
from common.training import TrainConfig

REFERENCE = paths.reference_dir() / "visual_wake_words" / "vww_96.h5"  # MLPerf Tiny MobileNetV1 0.25


@dataclass
class Config(TrainConfig):
    """Warm start from the MLPerf reference model and joint fine-tuning: only 1,000 real images
    are available offline."""

    epochs: int = 40  # fine-tuning epochs
    batch_size: int = 32
    lr: float = 2e-4
    lr_schedule: str = "cosine"
    init_from: str = str(REFERENCE)
    val_fraction: float = 0.2  # of the images, stratified
    test_fraction: float = 0.2
    rotation: float = 10 / 360  # MLPerf VWW augmentation: rotation, shift, zoom, flip
    shift: float = 0.05
    zoom: float = 0.1
    flip: bool = True


PRESETS = {"default": Config(), "smoke": Config(epochs=2, steps_per_epoch=3, batch_size=16)}
