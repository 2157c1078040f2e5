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


def pretrained_dir(task: str) -> Path:
    """A task's shipped models: pretrained/<task>/ in the repo (the default of every --models-dir)."""
    return REPO / "pretrained" / task


def runs_dir() -> Path:
    """Training run folders (checkpoints, backups): $TRECX_RUNS or runs/. Point it outside the
    checkout to keep unfinished runs when the checkout is cloned anew."""
    return Path(os.environ.get("TRECX_RUNS", REPO / "runs"))


REFERENCE_PREFIX = "reference:"  # a path under reference_dir(), as configs record it
RUNS_PREFIX = "runs:"  # a path under runs_dir() ($TRECX_RUNS), as configs record it


def portable(path: Path | str, root: Path | None = None) -> str:
    """How a path is recorded in configs and results: relative to `root` (e.g. the data root),
    `reference:<path>` under the MLPerf reference models, `runs:<path>` under the run folders
    ($TRECX_RUNS), relative to the repo under it; any other path as given. A record then reads the
    same on every machine."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    for base, prefix in ((root, ""), (reference_dir(), REFERENCE_PREFIX), (runs_dir(), RUNS_PREFIX), (REPO, "")):
        if base is not None:
            try:
                return prefix + str(path.resolve().relative_to(Path(base).resolve()))
            except ValueError:
                pass
    return str(path)


def resolve(path: str) -> Path:
    """The file a recorded path names: `reference:<path>` under reference_dir(); a relative path from
    the working folder when it exists there, else from the repo."""
    if path.startswith(REFERENCE_PREFIX):
        return reference_dir() / path[len(REFERENCE_PREFIX):]
    if path.startswith(RUNS_PREFIX):
        return runs_dir() / path[len(RUNS_PREFIX):]
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO / p
