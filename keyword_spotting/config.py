"""Configs of DS-CNN on Speech Commands: the default recipe and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass

from common import paths
from common.training import TrainConfig

REFERENCE = paths.reference_dir() / "keyword_spotting" / "kws_ref_model"  # MLPerf Tiny DS-CNN SavedModel


@dataclass
class Config(TrainConfig):
    """MLPerf Tiny KWS recipe (Adam, batch 100), warm-started from the MLPerf reference DS-CNN,
    because the local data is a 3.5k-clip subset (see its SOURCE.txt)."""

    epochs: int = 60  # fine-tuning epochs
    batch_size: int = 100  # MLPerf Tiny KWS batch size
    lr: float = 5e-4  # fine-tuning from the reference needs a smaller step than from scratch
    lr_schedule: str = "cosine"
    init_from: str = str(REFERENCE)  # "" trains from scratch
    silence_fraction: float = 0.1  # extra background-noise `_silence_` examples per epoch (of train size)


PRESETS = {
    "default": Config(),
    "scratch": Config(init_from="", epochs=150, lr=1e-3),
    "smoke": Config(epochs=2, steps_per_epoch=3, batch_size=16),
}
