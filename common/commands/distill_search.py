"""Tabulate a joint-training (distillation) search from its runs' logs:

    python -m common distill_search --task keyword_spotting

Copies each finished run of the task's DISTILL_SEARCH presets (`<task>/searches/distill.py`; variant `trecx`,
under $TRECX_RUNS or runs/) into results/<task>/distill_search/<preset>/, then writes from those
copies distill_search.csv
(one row a setting: teacher weight a, temperature T, learning rate; the kept epoch, by the training's
own rule, with its validation accuracy of both exits and how far the backbone moved) and
distill_search.png (validation early-exit accuracy per epoch). Settings are ranked by the mean of the
two exits' validation accuracy at the kept epoch; the test split is never read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..studies import search
from ..train import runs

VARIANT = "trecx"
SETTINGS = ("teacher", "distill_weight", "temperature", "self_distill", "lr", "head_epochs", "epochs", "keep_joint")
log = logging.getLogger("trecx.distill_search")


@dataclass
class DistillSearchConfig:
    """Options of `python -m common distill_search`."""

    task: str = ""  # a task whose searches/distill.py has DISTILL_SEARCH presets
    runs_dir: str = ""  # where the search runs are; "" = $TRECX_RUNS or runs/
    out_dir: str = ""  # "" = results/keyword_spotting


def row(folder: Path) -> dict:
    """One setting and what its kept model measured on validation."""
    cfg, epochs = search.read(folder)
    kept = search.kept_epoch(cfg, epochs)
    ee, final = float(kept["val_early_exit_accuracy"]), float(kept["val_final_accuracy"])
    return {"setting": folder.name, **{k: cfg.get(k) for k in SETTINGS}, "kept_epoch": int(kept["epoch"]) + 1,
            "val_early_exit_accuracy": round(ee, 4), "val_final_accuracy": round(final, 4),
            "val_mean_accuracy": round((ee + final) / 2, 4),
            "backbone_change": float(f"{float(kept.get('backbone_change') or 0):.3g}"),
            "cpu_minutes": runs.cpu_minutes(cfg, epochs)}


def run(cfg: DistillSearchConfig) -> list[dict]:
    """Copy the finished runs, write distill_search.csv and .png; returns the rows, best first."""
    task = tasks.get(cfg.task).name
    try:
        presets = tasks.module(task, "searches.distill").DISTILL_SEARCH
    except ModuleNotFoundError:
        raise ConfigError(f"--task {task} has no distillation search ({task}/searches/distill.py)") from None
    out = Path(cfg.out_dir or paths.results_dir() / task)
    rows = search.tabulate(Path(cfg.runs_dir or paths.runs_dir()), out, task, "distill_search", presets, VARIANT, row,
                           "val_mean_accuracy", lambda rows: {
                               "metric": "val_early_exit_accuracy", "mark": rows[0]["head_epochs"],
                               "title": f"{task} trecx: joint training settings (validation)"})
    for r in rows:
        log.info("%-24s EE %.2f%%  final %.2f%%  kept epoch %d  backbone moved %.3g", r["setting"],
                 100 * r["val_early_exit_accuracy"], 100 * r["val_final_accuracy"], r["kept_epoch"],
                 r["backbone_change"])
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(DistillSearchConfig, None, argv, description=__doc__, required=("task",)))
