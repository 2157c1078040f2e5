"""Shared engine of trecx: data, early-exit layers, evaluation, FLOPs, plots, training.

Importing this package registers every serializable Keras class of the project (the T-RecX layers,
the prior methods' layers and losses), so `.keras` files load with `keras.models.load_model` after
`import common`. TensorFlow's C++ start-up logs are silenced unless `--verbose` is on the command
line or TF_CPP_MIN_LOG_LEVEL is 0.
"""

import importlib.util
import os

from common.console import VERBOSE, quiet

if not VERBOSE and os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") != "0":
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" and importlib.util.find_spec("tensorflow"):
        with quiet((2,)):  # its C++ runtime logs a start-up banner while it loads, before any log level applies
            import tensorflow  # noqa: F401  (loaded once here, quietly; keras below uses it)

from common.models import layers, losses, paper_exit, prior  # noqa: F401  (register the serializable classes)
