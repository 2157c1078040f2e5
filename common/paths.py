"""Default locations. Every one is overridable by an option or an environment variable."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where datasets live: $TRECX_DATA, else ../shared/datasets beside the repo."""
    return Path(os.environ.get("TRECX_DATA", REPO.parent / "shared" / "datasets"))


def cache_dir() -> Path:
    """Ignored folder for extracted archives and decoded arrays: $TRECX_CACHE or .cache/."""
    return Path(os.environ.get("TRECX_CACHE", REPO / ".cache"))


def reference_dir() -> Path:
    """MLPerf Tiny reference models: $TRECX_REFERENCE or ../shared/reference_models/mlperf_tiny."""
    default = REPO.parent / "shared" / "reference_models" / "mlperf_tiny"
    return Path(os.environ.get("TRECX_REFERENCE", default))


def results_dir() -> Path:
    return Path(os.environ.get("TRECX_RESULTS", REPO / "results"))
