"""What each shipped model of a task cost to train: results/<task>/training_cost.csv
(`reporting.cost` says how CPU hours are counted).

    python -m common cost --task image_classification
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common import paths, tasks
from common.config import parse
from common.evaluation.evaluate import write_csv
from common.reporting.cost import total_cpu_hours, training_cost

log = logging.getLogger("trecx.cost")


@dataclass
class CostConfig:
    """Options of `python -m common cost`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words


def run(cfg: CostConfig) -> Path:
    """Write the task's training_cost.csv; returns its path."""
    task = tasks.check(cfg.task)
    rows = training_cost(paths.pretrained_dir(task))
    out = paths.results_dir() / task / "training_cost.csv"
    write_csv(out, rows)
    log.info(f"{task}: {len(rows)} models, {total_cpu_hours(rows):.1f} CPU hours in all -> {paths.portable(out)}")
    return out


def main(argv: list[str] | None = None) -> Path:
    return run(parse(CostConfig, None, argv, description=__doc__, required=("task",)))
