"""Check a task's accuracy and FLOPs targets against its results files (a benchmark, not a test):

    python -m common targets --task image_classification

Writes results/<task>/targets.csv (measured, required, gap, met, the gap's 95% interval over resampled
test images; `reporting.targets` says how each is read) and logs each target; a missed target is a result
to report, so the exit status is 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..files import write_csv
from ..reporting.resample import ROUNDS
from ..reporting.targets import check

log = logging.getLogger("trecx.targets")


@dataclass
class TargetsConfig:
    """Options of `python -m common targets`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    results_dir: str = ""  # "" = results/<task>
    rounds: int = ROUNDS  # bootstrap draws of the test images for each gap's 95% interval (0: none)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def run(cfg: TargetsConfig) -> list[dict]:
    """Write the task's targets.csv; returns its rows."""
    task = tasks.get(cfg.task)
    results = Path(cfg.results_dir or paths.results_dir() / task.name)
    if not (results / "table1.csv").exists():
        raise ConfigError(f"{results / 'table1.csv'} does not exist: run python -m {task.name}.test first")
    rows = check(task, results, cfg.rounds)
    write_csv(results / "targets.csv", rows)
    for r in rows:
        state = ("not measured" if r["met"] is None else "met" if r["met"] else
                 f"MISSED: {_fmt(r['test_drop_points'])} points below the baseline on test, over the "
                 f"{r['budget_points']}-point budget" if r["within_budget"] is False else
                 f"MISSED by {_fmt(-r['gap'])}")
        if r["beyond_noise"] is not None:
            state += (f"; gap 95% interval [{_fmt(r['gap_ci95_low'])}, {_fmt(r['gap_ci95_high'])}] over resampled "
                      f"test images: {'beyond' if r['beyond_noise'] else 'within'} test-sample noise")
        if r["test_drop_points"] is not None:
            state += f"; {r['from_model']}'s test accuracy there: {_fmt(r['test_drop_points'])} points below baseline"
        log.info(f"{r['target']}: {_fmt(r['measured'])} (needs {_fmt(r['required'])}; paper {r['paper']}): {state}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(TargetsConfig, None, argv, description=__doc__, required=("task",)))
