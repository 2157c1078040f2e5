"""Tabulate the ResNet-8 recipe search (searches/recipe.py) from its runs' logs:

    python -m image_classification.recipe_search

Copies each finished search run's `log.csv` and `config.json` (presets `search_*`, variant
`baseline`, under $TRECX_RUNS or runs/) into results/image_classification/recipe_search/<recipe>/,
then writes, from those copies only, recipe_search.csv (one row a recipe: its settings, epochs, CPU
minutes, last-epoch train and validation accuracy) and recipe_search.png (validation accuracy per
epoch). Recipes are ranked by last-epoch validation accuracy; the test split is never read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from trecx import paths
from trecx.config import parse
from trecx.studies import search
from trecx.train import runs

from .searches.recipe import SEARCH

TASK = "image_classification"
SETTINGS = ("optimizer", "nesterov", "lr", "lr_schedule", "warmup_epochs", "batch_size", "weight_decay",
            "label_smoothing", "ema", "rotation", "shift", "pad_crop", "flip")
log = logging.getLogger("trecx.recipe_search")
TITLE = "ResNet-8 recipe search (baseline, from scratch)"


@dataclass
class SearchConfig:
    """Options of image_classification.recipe_search."""

    runs_dir: str = ""  # where the search runs are; "" = $TRECX_RUNS or runs/
    out_dir: str = ""  # "" = results/image_classification


def row(folder: Path) -> dict:
    """One recipe's settings and outcome, from its copied log and config."""
    cfg, epochs = search.read(folder)
    last, best = epochs[-1], search.kept_epoch(cfg, epochs)
    return {"recipe": folder.name, **{k: cfg.get(k) for k in SETTINGS}, "epochs": len(epochs),
            "threads": runs.threads(cfg), "cpu_minutes": runs.cpu_minutes(cfg, epochs),
            "train_accuracy": round(float(last["accuracy"]), 4), "val_accuracy": round(float(last["val_accuracy"]), 4),
            "best_val_accuracy": round(float(best["val_accuracy"]), 4), "best_epoch": int(best["epoch"]) + 1}


def run(cfg: SearchConfig) -> list[dict]:
    """Copy the finished runs, write recipe_search.csv and .png; returns the rows, best first."""
    out = Path(cfg.out_dir or paths.results_dir() / TASK)
    rows = search.tabulate(Path(cfg.runs_dir or paths.runs_dir()), out, TASK, "recipe_search", SEARCH, "baseline", row,
                           "val_accuracy", lambda rows: {"metric": "val_accuracy", "title": TITLE}, strip="search_")
    for r in rows:
        log.info("%-24s val %.2f%%  train %.2f%%  %d epochs  %.0f CPU min", r["recipe"], 100 * r["val_accuracy"],
                 100 * r["train_accuracy"], r["epochs"], r["cpu_minutes"])
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(SearchConfig, None, argv, description=__doc__))


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
