"""trecx: T-RecX early exits on tiny CNNs. In the checkout this package is `common`; installed, it is `trecx`.

The public API is here by name (`trecx.attach_exit`, `trecx.calibrate_exit`, ...: the functions of `api`,
docs/api.md), loaded on first use. Importing this package registers every serializable Keras class of the
project (the T-RecX layers, the prior methods' layers and losses), so `.keras` files load with
`keras.models.load_model` after `import trecx` (or `import common` in the checkout).
TensorFlow's C++ start-up logs are silenced unless `--verbose` is on the command line or TF_CPP_MIN_LOG_LEVEL
is 0.
"""

import importlib.util
import os

from .console import VERBOSE, quiet

if not VERBOSE and os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") != "0":
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" and importlib.util.find_spec("tensorflow"):
        with quiet((2,)):  # its C++ runtime logs a start-up banner while it loads, before any log level applies
            import tensorflow  # noqa: F401  (loaded once here, quietly; keras below uses it)

from .models import layers, losses, paper_exit, prior  # noqa: F401  (register the serializable classes)

API = ("attach_exit", "train_exit", "exit_costs", "cost_vector", "place_exits", "outputs", "calibrate_exit",
       "fit_signal", "export_int8", "thresholds", "runtime", "monitor_level", "save_graphs", "export_sources",
       "firmware", "classifier", "Calibration", "Monitor", "ModelError")  # api.__all__: a test keeps the two the same


def __getattr__(name: str):
    """The public API by name, `api` imported on first use (it loads the edge and training stacks)."""
    if name in API:
        from . import api  # lazy: `import trecx` stays light; the API loads the edge and training stacks

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
