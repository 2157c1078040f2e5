"""Configs of ResNet-8 on CIFAR-10: the default recipe, the recipe search, and a smoke variant."""

from __future__ import annotations

from dataclasses import dataclass, replace

from common.config import TrainConfig

BASELINE = "pretrained/image_classification/baseline.keras"  # our trained baseline (relative to the repo)


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
    pad_crop: int = 0  # zero-pad by this many pixels, then crop back at random (4 in most CIFAR recipes)


# The recipe search (issue 15): 15 epochs each from scratch, baseline ResNet-8, judged on validation
# accuracy only; `python -m image_classification.recipe_search` tabulates the runs.
SEARCH_EPOCHS = 15
_MLPERF = Config(epochs=SEARCH_EPOCHS)  # MLPerf Tiny: Adam 1e-3 x0.99/epoch, batch 32, rotation+shift+flip
_PLAIN_AUG = {"rotation": 0.0, "shift": 0.0, "pad_crop": 4}  # 4-pixel pad + random crop + flip
_ADAM = replace(_MLPERF, lr=2e-3, batch_size=64, lr_schedule="cosine", warmup_epochs=2, **_PLAIN_AUG)
_SGD = replace(_ADAM, optimizer="sgd", nesterov=True, lr=0.1, batch_size=128)
SEARCH = {
    "search_mlperf": _MLPERF,
    "search_adam_mlperfaug": replace(_ADAM, rotation=15 / 360, shift=0.1, pad_crop=0),
    "search_adam": _ADAM,
    "search_sgd": _SGD,
    "search_sgd_wd5e-4": replace(_SGD, weight_decay=5e-4),
    "search_sgd_ls": replace(_SGD, label_smoothing=0.1),
    "search_sgd_ema": replace(_SGD, ema=0.999),
    "search_sgd_b256": replace(_SGD, batch_size=256, lr=0.2),
}

PRESETS = {
    "default": Config(),
    "cosine": Config(lr_schedule="cosine", batch_size=64, lr=2e-3),
    "smoke": Config(epochs=2, steps_per_epoch=3, batch_size=16),
    # T-RecX variants warm-started from our trained baseline: heads first, then jointly
    "finetune": Config(init_from=BASELINE, head_epochs=3, head_lr=3e-3, epochs=20, lr=2e-4,
                       lr_schedule="cosine", batch_size=64),
    **SEARCH,
}
