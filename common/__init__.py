"""Shared engine of trecx: data, early-exit layers, evaluation, FLOPs, plots, training.

Importing this package registers every serializable Keras class of the project (the T-RecX layers,
the prior methods' layers and losses), so `.keras` files load with `keras.models.load_model` after
`import common`. TensorFlow's C++ start-up logs are silenced unless `--verbose` is on the command
line or TF_CPP_MIN_LOG_LEVEL is set.
"""

import os
import sys

if "--verbose" not in sys.argv:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common.models import layers, losses, paper_exit, prior  # noqa: F401  (register the serializable classes)
