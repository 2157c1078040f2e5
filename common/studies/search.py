"""Settings searches tabulated from their runs' logs (the IC recipe search, the KWS distillation search).

A search is a set of presets trained for one variant. `collect` copies each finished run's `log.csv`
and `config.json` into results/<task>/<search>/<preset>/ (no machine paths), so the tables and plots
are regenerated from those copies alone; the test split is never read.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from .. import files, paths
from ..config import PATH_FIELDS
from ..train import plots

log = logging.getLogger("trecx.search")


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


def kept_epoch(cfg: dict, epochs: list[dict]) -> dict:
    """The epoch whose model best.keras holds, by the training's rule: lowest joint validation loss
    (from the first joint epoch on with keep_joint), or highest validation accuracy for one exit."""
    pool = [e for e in epochs if not cfg.get("keep_joint") or int(e["epoch"]) >= cfg.get("head_epochs", 0)]
    if "val_accuracy" in epochs[0]:
        return max(pool, key=lambda e: float(e["val_accuracy"]))
    return min(pool, key=lambda e: float(e["val_loss"]))


def tabulate(runs: Path, out: Path, task: str, name: str, presets, variant: str, row: Callable[[Path], dict],
             best: str, curves: Callable[[list[dict]], dict], strip: str = "") -> list[dict]:
    """A finished search as a table: copy its runs (`collect`) into out/<name>/, one `row` per copied run, the
    highest `best` first, into out/<name>.csv, and their validation curves (`train.plots.training_curves`, with
    the options `curves(rows)` gives; runs labelled by folder name less `strip`) into out/<name>.png."""
    copied = collect(runs, task, presets, variant, out / name)
    log.info("copied %d finished run(s): %s", len(copied), ", ".join(copied) or "none")
    folder = out / name
    folders = sorted(p for p in folder.iterdir() if (p / "log.csv").exists()) if folder.is_dir() else []
    rows = sorted((row(f) for f in folders), key=lambda r: -r[best])
    files.write_csv(out / f"{name}.csv", rows)
    if folders:
        plots.training_curves({f.name.removeprefix(strip): f / "log.csv" for f in folders}, out / f"{name}.png",
                              **curves(rows))
    return rows
