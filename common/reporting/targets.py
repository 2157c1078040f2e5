"""A task's accuracy and FLOPs targets against its results files (a benchmark, not a test; the command
`python -m common targets --task TASK` writes results/<task>/targets.csv).

Each task lists its targets in its Task spec (`<task>/task.py`). A target reads a number from the
task's results, written by its test.py (rho chosen on validation, reported on test): `model.column` of
table1.csv, `max(a,b).column` for the best of several models, or `curve_gain(a,b)`, how many points
benefit curve `a` lies above `b` on average over the MFLOPs both cover. It is met when that number is at
least `at_least`: a number, or another such reference. For a trade-off at k points it also names the
model the number came from and how far below the baseline its test accuracy landed at the
validation-chosen (or certified) rho; such a target is met only when that drop is within k. Where test.py
left the models' outputs, each gap also gets a 95% interval over resampled test images
(`reporting.resample`): a gap whose interval holds 0 is within what other test images could read.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import tasks
from ..errors import ConfigError
from ..evaluation.evaluate import curve_gain
from ..files import read_csv
from .resample import ROUNDS, Resampler

COLUMNS = ("target", "task", "measured", "required", "met", "note")  # every targets file's first columns


def row(target: str, task: str, measured, required, met, note: str = "", **details) -> dict:
    """A target as every targets file writes it (targets.csv, firmware_targets.csv, firmware_deploy_targets.csv,
    placement_targets.csv): what is promised, for which task ("all": across them), the number measured, the
    number required, whether it is met (None: not measurable yet) and a note; then that file's own details."""
    return dict(zip(COLUMNS, (target, task, measured, required, met, note), strict=True)) | details


def parse_ref(ref: float | str) -> tuple:
    """("number", v), ("gain", a, b) or ("column", [models], column) for a target reference."""
    if isinstance(ref, (int, float)):
        return ("number", float(ref))
    if m := re.fullmatch(r"curve_gain\((\w+),(\w+)\)", ref):
        return ("gain", *m.groups())
    m = re.fullmatch(r"(?:max\(([\w,]+)\)|(\w+))\.(\w+)", ref)
    if not m:
        raise ConfigError(f"target reference {ref!r} is not model.column, max(a,b).column or curve_gain(a,b)")
    return ("column", (m.group(1) or m.group(2)).split(","), m.group(3))


def read(ref: float | str, results: Path, table: dict[str, dict]) -> float | None:
    """The number a reference names, or None when the models it needs have no results yet."""
    parsed = parse_ref(ref)
    if parsed[0] == "number":
        return parsed[1]
    if parsed[0] == "gain":
        a, b = (results / n / "benefit_curve_test.csv" for n in parsed[1:])
        return curve_gain(a, b)["mean_gain_points"] if a.exists() and b.exists() else None
    best = best_row(parsed[1], parsed[2], table)
    return None if best is None else float(best[parsed[2]])


def best_row(models: list[str], column: str, table: dict[str, dict]) -> dict | None:
    """The table1 row of the model among `models` picked on validation: the highest number in the validation
    counterpart of `column` (`..._test_...` read as `..._val_...`), never on test (None: none has one)."""
    rows = [table[n] for n in models if isinstance(table.get(n, {}).get(column), (int, float))]
    if len(models) == 1 or not rows:
        return rows[0] if rows else None
    pick = column.replace("test", "val", 1)
    if pick == column or not all(isinstance(r.get(pick), (int, float)) for r in rows):
        raise ConfigError(f"max({','.join(models)}).{column} picks on validation, but table1.csv has no {pick} "
                          "for each of them: rerun the task's test.py")
    return max(rows, key=lambda r: r[pick])


def picked(ref: float | str, table: dict[str, dict]) -> tuple:
    """A parsed reference with `max(a,b)` resolved to the model validation picked: resampled test images then
    measure that model, never a new pick among them."""
    parsed = parse_ref(ref)
    if parsed[0] == "column" and len(parsed[1]) > 1 and (best := best_row(parsed[1], parsed[2], table)):
        return ("column", [best["model"]], parsed[2])
    return parsed


def tradeoff_drop(ref: float | str, table: dict[str, dict], baseline: str) -> dict:
    """For a trade-off column (`..._<k>pt`, read at the rho chosen on validation, or certified there for a
    `guaranteed_...` column): the model the number came from, how many points below the baseline its test
    accuracy landed there (it may exceed k), and k."""
    parsed = parse_ref(ref)
    m = re.search(r"_(\d)pt$", parsed[2]) if parsed[0] == "column" else None
    best = best_row(parsed[1], parsed[2], table) if m else None
    if best is None or baseline not in table:
        return {"from_model": None, "test_drop_points": None, "budget_points": None}
    k = int(m.group(1))
    if parsed[2].startswith(("guaranteed_", "vector_")):
        drop = best.get(f"{parsed[2].split('_')[0]}_test_drop_points_{k}pt")
    else:
        acc = best.get(f"test_accuracy_{k}pt")
        drop = None if acc is None else 100 * (table[baseline]["final_test_accuracy"] - acc)
    return {"from_model": best["model"], "test_drop_points": drop, "budget_points": k}


def check(task: tasks.Task, results: Path, rounds: int = ROUNDS) -> list[dict]:
    """Every target of `task` against `results` (its table1.csv and benefit curves), with the 95% interval
    of the gap over resampled test images when the models' cached outputs are there (`rounds` 0: none)."""
    table = {r["model"]: r for r in read_csv(results / "table1.csv")}
    resampler = Resampler(results)
    rows = []
    for t in task.targets:
        got, need = read(t.measure, results, table), read(t.at_least, results, table)
        need = None if need is None else need + t.margin
        drop = tradeoff_drop(t.measure, table, task.baseline)
        # a trade-off counts only if the test accuracy at its rho stayed within the budget it was chosen for
        within = None if drop["test_drop_points"] is None else drop["test_drop_points"] <= drop["budget_points"] + 1e-9
        met = None if got is None or need is None else got >= need and within is not False
        ci = None
        if met is not None and rounds:
            ci = resampler.interval(picked(t.measure, table), picked(t.at_least, table), rounds, margin=t.margin)
        rows.append(row(t.name, task.name, got, need, met, measure=t.measure,
                        gap=None if met is None else got - need, gap_ci95_low=ci and ci[0],
                        gap_ci95_high=ci and ci[1], beyond_noise=None if ci is None else ci[0] > 0 or ci[1] < 0,
                        paper=t.paper, **drop, within_budget=within))
    return rows
