"""The ResNet-8 recipe search (finished): each preset trains the baseline from scratch for 15 epochs,
judged on validation accuracy only. `image_classification/queues/recipe_search.txt` trains them and
`python -m image_classification.recipe_search` tabulates them (results/image_classification/recipe_search.csv);
the winner, `search_sgd_ls`, became the `default` preset of config.py."""

from __future__ import annotations

from dataclasses import replace

from ..config import Config

# MLPerf Tiny's own recipe (Adam 1e-3 x0.99 per epoch, batch 32, rotation/shift/flip; 500 epochs there).
MLPERF = Config(epochs=500, batch_size=32, optimizer="adam", nesterov=False, lr=1e-3, lr_schedule="exp99",
                warmup_epochs=0, label_smoothing=0.0, rotation=15 / 360, shift=0.1, pad_crop=0)

# The recipe search: 15 epochs each from scratch, baseline ResNet-8, judged on validation
# accuracy only; `python -m image_classification.recipe_search` tabulates the runs.
SEARCH_EPOCHS = 15
_MLPERF = replace(MLPERF, epochs=SEARCH_EPOCHS)
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
