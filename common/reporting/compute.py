"""What each shipped model cost to train, from the log and config published beside it
(pretrained/<task>/<model>.log.csv and .config.json): results/<task>/training_cost.csv.

    python -m common compute --task image_classification

CPU hours are the epochs' wall time times the run's threads; an epoch that ran far over the run's
median (train.runs.PAUSED: its process was stopped, not training) is counted at the median and reported in
`paused_epochs`. A model warm-started from another (`init_from`, e.g. PTEENet's heads on the frozen
baseline) counts only its own epochs: add the other model's row for the whole cost. A model shipped as a
copy of another (`studies.promote`: trecx_plus from trecx_dwfirst) names it in `copy_of` and is not counted
again in the total.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..train.runs import epoch_seconds, threads


def model_cost(log_csv: Path, config_json: Path) -> dict:
    """One model's row: epochs trained, threads, wall and CPU hours, paused epochs, preset, warm start."""
    with open(log_csv) as f:
        by_epoch = {r["epoch"]: r for r in csv.DictReader(f)}  # a resumed run may log an epoch twice
    cfg = json.loads(config_json.read_text()) if config_json.exists() else {}
    n, (seconds, paused) = threads(cfg), epoch_seconds(list(by_epoch.values()))
    timed = seconds > 0
    return {"model": log_csv.name.removesuffix(".log.csv"), "preset": cfg.get("preset", ""),
            "epochs": len(by_epoch), "threads": n,
            "wall_hours": round(seconds / 3600, 2) if timed else None,
            "cpu_hours": round(seconds * n / 3600, 2) if timed else None,
            "paused_epochs": paused, "init_from": cfg.get("init_from", ""), "copy_of": cfg.get("shipped_from", "")}


def total_cpu_hours(rows: list[dict]) -> float:
    """The CPU hours of the rows, a copy of another shipped model (`copy_of`) not counted twice."""
    return sum(r["cpu_hours"] or 0 for r in rows if not r.get("copy_of"))


def training_cost(pretrained: Path) -> list[dict]:
    """A row per shipped model of one task folder (seeds/ and other subfolders left out)."""
    return [model_cost(p, p.with_name(p.name.replace(".log.csv", ".config.json")))
            for p in sorted(pretrained.glob("*.log.csv"))]
