"""Default locations. Every one is overridable by an option or an environment variable, and none is ever inside
the installed package: in the checkout they are the checkout's folders (and ../shared beside it); installed,
they are under $TRECX_HOME, else the working directory (caches under ~/.cache/trecx)."""

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# the checkout this library runs from (common/ beside pyproject.toml, also under `pip install -e .`), else None
CHECKOUT = _HERE.parent if _HERE.name == "common" and (_HERE.parent / "pyproject.toml").is_file() else None


def home() -> Path:
    """The root of results/, pretrained/, runs/: $TRECX_HOME, else the checkout, else the working directory."""
    if "TRECX_HOME" in os.environ:
        return Path(os.environ["TRECX_HOME"])
    return CHECKOUT if CHECKOUT is not None else Path.cwd()


def _shared(*parts: str) -> Path | None:
    """../shared/<parts> beside the checkout (the project's read-only data), or None when installed."""
    return CHECKOUT.parent.joinpath("shared", *parts) if CHECKOUT is not None else None


def data_dir() -> Path:
    """Where datasets live: $TRECX_DATA, else ../shared/datasets beside the checkout, else <home>/datasets."""
    return Path(os.environ.get("TRECX_DATA") or _shared("datasets") or home() / "datasets")


def cache_dir() -> Path:
    """Ignored folder for extracted archives and decoded arrays: $TRECX_CACHE, else .cache/ in the checkout,
    else ~/.cache/trecx."""
    if "TRECX_CACHE" in os.environ:
        return Path(os.environ["TRECX_CACHE"])
    return CHECKOUT / ".cache" if CHECKOUT is not None else Path.home() / ".cache" / "trecx"


def reference_dir() -> Path:
    """MLPerf Tiny reference models: $TRECX_REFERENCE, else ../shared/reference_models/mlperf_tiny beside the
    checkout, else <home>/reference_models/mlperf_tiny."""
    default = _shared("reference_models", "mlperf_tiny") or home() / "reference_models" / "mlperf_tiny"
    return Path(os.environ.get("TRECX_REFERENCE") or default)


def third_party_dir() -> Path | None:
    """TFLM's source archives (docs/deployment.md): $TRECX_THIRD_PARTY, else ../shared/third_party beside the
    checkout; None when neither is there."""
    if os.environ.get("TRECX_THIRD_PARTY"):
        return Path(os.environ["TRECX_THIRD_PARTY"])
    return _shared("third_party")


def results_dir() -> Path:
    """Where commands write: $TRECX_RESULTS, else <home>/results."""
    return Path(os.environ.get("TRECX_RESULTS") or home() / "results")


def pretrained_dir(task: str) -> Path:
    """A task's shipped models (the default of every --models-dir): $TRECX_PRETRAINED/<task>, else
    <home>/pretrained/<task>."""
    return Path(os.environ.get("TRECX_PRETRAINED") or home() / "pretrained") / task


def runs_dir() -> Path:
    """Training run folders (checkpoints, backups): $TRECX_RUNS, else <home>/runs. Point it outside the
    checkout to keep unfinished runs when the checkout is cloned anew."""
    return Path(os.environ.get("TRECX_RUNS") or home() / "runs")


REFERENCE_PREFIX = "reference:"  # a path under reference_dir(), as configs record it
RUNS_PREFIX = "runs:"  # a path under runs_dir() ($TRECX_RUNS), as configs record it


def portable(path: Path | str, root: Path | None = None) -> str:
    """How a path is recorded in configs and results: relative to `root` (e.g. the data root),
    `reference:<path>` under the MLPerf reference models, `runs:<path>` under the run folders
    ($TRECX_RUNS), relative to <home> under it; any other path as given. A record then reads the
    same on every machine."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    for base, prefix in ((root, ""), (reference_dir(), REFERENCE_PREFIX), (runs_dir(), RUNS_PREFIX), (home(), "")):
        if base is not None:
            try:
                return prefix + str(path.resolve().relative_to(Path(base).resolve()))
            except ValueError:
                pass
    return str(path)


def resolve(path: str) -> Path:
    """The file a recorded path names: `reference:<path>` under reference_dir(); a relative path from
    the working folder when it exists there, else from <home>."""
    if path.startswith(REFERENCE_PREFIX):
        return reference_dir() / path[len(REFERENCE_PREFIX):]
    if path.startswith(RUNS_PREFIX):
        return runs_dir() / path[len(RUNS_PREFIX):]
    p = Path(path)
    return p if p.is_absolute() or p.exists() else home() / p
