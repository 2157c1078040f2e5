"""Configs of MobileNetV1-0.25 on Visual Wake Words: the default recipe and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass

from trecx import paths
from trecx.config import TrainConfig

REFERENCE = paths.REFERENCE_PREFIX + "visual_wake_words/vww_96.h5"  # MLPerf Tiny MobileNetV1 0.25 (see paths.resolve)


@dataclass
class Config(TrainConfig):
    """Warm start from the MLPerf reference model: only 1,000 real images are available offline, so
    the new exit heads (and the final classifier) first train on the frozen backbone, then the whole
    network is fine-tuned jointly at a small learning rate (more than that overfits 600 images). The
    kept model is always one of the joint epochs: distillation from the reference did not
    beat labels alone on validation (results/visual_wake_words/distill_search.csv)."""

    task: str = "visual_wake_words"  # this task (not an option)
    epochs: int = 50  # all epochs, the head-only ones included
    head_epochs: int = 40  # exit heads and final classifier only, backbone frozen
    head_lr: float = 3e-3
    batch_size: int = 32
    lr: float = 2e-5  # the joint fine-tuning epochs
    lr_schedule: str = "cosine"
    init_from: str = REFERENCE
    val_fraction: float = 0.2  # of the images, stratified
    test_fraction: float = 0.2
    rotation: float = 10 / 360  # MLPerf VWW augmentation: rotation, shift, zoom, flip
    shift: float = 0.05
    zoom: float = 0.1
    flip: bool = True
    keep_joint: bool = True  # keep the best joint epoch, never a head-only one



PRESETS = {"default": Config(), "smoke": Config(epochs=2, head_epochs=1, steps_per_epoch=3, batch_size=16)}
