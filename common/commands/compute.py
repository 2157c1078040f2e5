"""The compute (CPU hours) each shipped model of a task took to train: results/<task>/training_cost.csv
(`reporting.compute` says how CPU hours are counted).

    python -m common compute --task image_classification
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import paths, tasks
from ..config import parse
from ..files import write_csv
from ..reporting.compute import total_cpu_hours, training_cost

log = logging.getLogger("trecx.compute")


@dataclass
class ComputeConfig:
    """Options of `python -m common compute`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words


def run(cfg: ComputeConfig) -> Path:
    """Write the task's training_cost.csv; returns its path."""
    task = tasks.check(cfg.task)
    rows = training_cost(paths.pretrained_dir(task))
    out = paths.results_dir() / task / "training_cost.csv"
    write_csv(out, rows)
    log.info(f"{task}: {len(rows)} models, {total_cpu_hours(rows):.1f} CPU hours in all -> {paths.portable(out)}")
    return out


def main(argv: list[str] | None = None) -> Path:
    return run(parse(ComputeConfig, None, argv, description=__doc__, required=("task",)))
