"""Settings searches tabulated from their runs' logs (the IC recipe search, the KWS distillation search).

A search is a set of presets trained for one variant. `collect` copies each finished run's `log.csv`
and `config.json` into results/<task>/<search>/<preset>/ (no machine paths), so the tables and plots
are regenerated from those copies alone; the test split is never read.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from common import files, paths
from common.config import PATH_FIELDS


def collect(runs: Path, task: str, presets, variant: str, dest: Path) -> list[str]:
    """Copy the log and config of every finished run runs/<task>/<preset>/<variant> into dest/<preset>/;
    returns the presets copied."""
    copied = []
    for name in presets:
        run = runs / task / name / variant
        if (run / "done.json").exists():
            with files.atomic(dest / name / "log.csv") as tmp:
                shutil.copy(run / "log.csv", tmp)
            cfg = json.loads((run / "config.json").read_text())
            cfg["data"]["source"] = paths.portable(cfg["data"]["source"], paths.data_dir())  # no machine paths
            files.write_json(dest / name / "config.json", {k: paths.portable(v) if k in PATH_FIELDS and v else v
                                                           for k, v in cfg.items()})
            copied.append(name)
    return copied


def read(folder: Path) -> tuple[dict, list[dict]]:
    """(config, epochs of the log as dicts of strings) of one copied run."""
    with open(folder / "log.csv") as f:
        return json.loads((folder / "config.json").read_text()), list(csv.DictReader(f))


# An epoch that ran over PAUSED times the run's median and over PAUSED_S seconds longer was stopped
# (SIGSTOP, a sleeping machine), not training; a first epoch (tracing, data caches) or the first
# epoch of a joint phase (a new graph) may legitimately take several times the median, so both hold.
PAUSED, PAUSED_S = 10.0, 600.0


def epoch_seconds(epochs: list[dict]) -> tuple[float, int]:
    """Wall seconds of all epochs, and how many of them were counted at the run's median instead
    because the process was stopped during them (see PAUSED)."""
    secs = sorted(float(e["epoch_seconds"]) for e in epochs if e.get("epoch_seconds"))
    if not secs:
        return 0.0, 0
    median = secs[len(secs) // 2]
    paused = [s for s in secs if s > PAUSED * median and s - median > PAUSED_S]
    return sum(secs) - sum(paused) + median * len(paused), len(paused)


def threads(cfg: dict) -> int:
    """The threads a run trained on: its config's, or 2 (the whole machine) when it used them all or
    recorded none."""
    return cfg.get("threads") or 2


def cpu_minutes(cfg: dict, epochs: list[dict]) -> float:
    """Wall time of all epochs (paused ones at the median) times the run's threads."""
    return round(epoch_seconds(epochs)[0] * threads(cfg) / 60, 1)


def kept_epoch(cfg: dict, epochs: list[dict]) -> dict:
    """The epoch whose model best.keras holds, by the training's rule: lowest joint validation loss
    (from the first joint epoch on with keep_joint), or highest validation accuracy for one exit."""
    pool = [e for e in epochs if not cfg.get("keep_joint") or int(e["epoch"]) >= cfg.get("head_epochs", 0)]
    if "val_accuracy" in epochs[0]:
        return max(pool, key=lambda e: float(e["val_accuracy"]))
    return min(pool, key=lambda e: float(e["val_loss"]))
