"""Configs of DS-CNN on Speech Commands: the default recipe and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass

from trecx import paths
from trecx.config import TrainConfig

REFERENCE = paths.REFERENCE_PREFIX + "keyword_spotting/kws_ref_model"  # MLPerf Tiny DS-CNN SavedModel


@dataclass
class Config(TrainConfig):
    """MLPerf Tiny KWS recipe (Adam, batch 100), warm-started from the MLPerf reference DS-CNN,
    because the local data is a 3.5k-clip subset (see its SOURCE.txt): the new heads first train on
    the frozen backbone (at the backbone's fine-tuning rate they learn too slowly), then all jointly.
    The kept model is always one of the joint epochs: distillation from the reference and
    self-distillation did not beat labels alone on validation (results/keyword_spotting/distill_search.csv)."""

    task: str = "keyword_spotting"  # this task (not an option)
    epochs: int = 60  # all epochs, the head-only ones included
    head_epochs: int = 20  # exit heads and final classifier only, backbone frozen
    head_lr: float = 3e-3
    batch_size: int = 100  # MLPerf Tiny KWS batch size
    lr: float = 3e-4  # joint fine-tuning from the reference needs a smaller step than from scratch
    lr_schedule: str = "cosine"
    init_from: str = REFERENCE  # "" trains from scratch
    silence_fraction: float = 0.1  # extra background-noise `_silence_` examples per epoch (of train size)
    keep_joint: bool = True  # keep the best joint epoch, never a head-only one


PRESETS = {
    "default": Config(),
    "smoke": Config(epochs=2, head_epochs=1, steps_per_epoch=3, batch_size=16),
}
