"""Check a task's accuracy and FLOPs targets against its results files (a benchmark, not a test):

    python -m common.targets --task image_classification

Each task lists its targets in its Task spec (`<task>/task.py`). A target reads a number from the
task's results, written by its test.py (rho chosen on validation, reported on test): `model.column` of
table1.csv, `max(a,b).column` for the best of several models, or `curve_gain(a,b)`, how many points
benefit curve `a` lies above `b` on average over the MFLOPs both cover. It is met when that number is at
least `at_least`: a number, or another such reference. Writes results/<task>/targets.csv (measured,
required, gap, met) and prints it; a missed target is a result to report, so the exit status is 0.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from common import paths, tasks
from common.config import parse
from common.errors import ConfigError
from common.evaluation.evaluate import curve_gain, read_csv, write_csv

log = logging.getLogger("trecx.targets")


def read(ref: float | str, results: Path, table: dict[str, dict]) -> float | None:
    """The number a reference names, or None when the models it needs have no results yet."""
    if isinstance(ref, (int, float)):
        return float(ref)
    if m := re.fullmatch(r"curve_gain\((\w+),(\w+)\)", ref):
        a, b = (results / n / "benefit_curve_test.csv" for n in m.groups())
        return curve_gain(a, b)["mean_gain_points"] if a.exists() and b.exists() else None
    m = re.fullmatch(r"(?:max\(([\w,]+)\)|(\w+))\.(\w+)", ref)
    if not m:
        raise ConfigError(f"target reference {ref!r} is not model.column, max(a,b).column or curve_gain(a,b)")
    models = (m.group(1) or m.group(2)).split(",")
    values = [table[n].get(m.group(3)) for n in models if n in table]
    values = [float(v) for v in values if isinstance(v, (int, float))]
    return max(values) if values else None


def check(task: tasks.Task, results: Path) -> list[dict]:
    """Every target of `task` against `results` (its table1.csv and benefit curves)."""
    table = {r["model"]: r for r in read_csv(results / "table1.csv")}
    rows = []
    for t in task.targets:
        got, need = read(t.measure, results, table), read(t.at_least, results, table)
        met = None if got is None or need is None else got >= need
        rows.append({"target": t.name, "measure": t.measure, "measured": got, "required": need,
                     "gap": None if met is None else got - need, "met": met, "paper": t.paper})
    return rows


@dataclass
class TargetsConfig:
    """Options of common.targets."""

    task: str = "image_classification"  # image_classification, keyword_spotting or visual_wake_words
    results_dir: str = ""  # "" = results/<task>


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse(TargetsConfig, {"default": TargetsConfig()}, argv, description=__doc__)
    task = tasks.get(cfg.task)
    results = Path(cfg.results_dir or paths.results_dir() / task.name)
    if not (results / "table1.csv").exists():
        raise ConfigError(f"{results / 'table1.csv'} does not exist: run python -m {task.name}.test first")
    rows = check(task, results)
    write_csv(results / "targets.csv", rows)
    def fmt(v) -> str:
        return "n/a" if v is None else f"{v:.4g}"

    for r in rows:
        state = "not measured" if r["met"] is None else "met" if r["met"] else f"MISSED by {fmt(-r['gap'])}"
        log.info(f"{r['target']}: {fmt(r['measured'])} (needs {fmt(r['required'])}; paper {r['paper']}): {state}")
    return rows


if __name__ == "__main__":
    from common import cli

    cli.run(main)
