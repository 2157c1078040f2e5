"""Does the threshold rule keep its promise on unseen data? The re-split study of a task's shipped models:

    python -m common calibration --task image_classification

For each model, its cached validation and test outputs (test.py's `outputs.npz`) and its baseline's are
pooled and re-split `--splits` times (`studies.resplit`): every rule (validation, Learn-then-Test with a betting
or a Hoeffding-Bentkus p-value, label-free) chooses rho on one part, and the budget (`--max-drop` points
below the baseline) is checked on the held-out half and on the pooled population. Writes
results/<task>/calibration_study.csv (violation rate with its exact 95% interval, abstentions, FLOPs cut)
and calibration_study.png; and, from the validation outputs alone, what that split can certify:
results/<task>/calibration_plan.csv (the planner, `calibrate.likely_certified` and `samples_needed`, on each
model's validation disagreement with the baseline: for 1, 2 and 3 points, the cheapest rho the split's size
can likely certify and the samples the validation rule's rho would need). `--study false` writes the plan alone.
The re-split study pools one fixed model's samples, so it cannot see the choice of that model; the selection study
(`studies.selection`, `--selection-rounds`) can: a part of the pooled samples picks the best of every tested variant,
whose rho is then certified on that same part and on a part apart, both judged on the rest
(results/<task>/calibration_selection.csv).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..evaluation import plots
from ..evaluation.evaluate import CALIBRATION
from ..files import write_csv
from ..studies import resplit, selection

log = logging.getLogger("trecx.calibration")


@dataclass
class CalibrationConfig:
    """Options of `python -m common calibration`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    models: tuple[str, ...] = ("trecx", "trecx_plus")  # tested models of results/<task>/ (those with outputs)
    splits: int = 500  # random calibration / evaluation splits per model and measure
    max_drop: float = 1.0  # the budget: points below the baseline's accuracy
    delta: float = 0.05  # the allowed probability of breaking it
    seed: int = 0  # seeds the splits
    results_dir: str = ""  # "" = results/<task>
    study: bool = True  # run the re-split study (false: only the calibration plan)
    selection_rounds: int = 200  # rounds of the selection study (0: none)


def run(cfg: CalibrationConfig) -> list[dict]:
    """Run the study for every model that has cached outputs; write the CSV and the figure; returns the rows."""
    task = tasks.get(cfg.task)
    if cfg.splits < 1 or not 0 < cfg.delta < 1 or cfg.max_drop <= 0:
        raise ConfigError(f"--splits must be at least 1, --delta in (0, 1), --max-drop above 0 (got {cfg.splits}, "
                          f"{cfg.delta}, {cfg.max_drop})")
    results = Path(cfg.results_dir or paths.results_dir() / task.name)
    n_cal = (json.loads((results / "split.json").read_text()).get("counts") or {}).get(CALIBRATION, 0) if (
        results / "split.json").exists() else 0
    plan = [r for m in cfg.models for r in resplit.plan(results, m, task.baseline, delta=cfg.delta, samples=n_cal)]
    if plan:
        write_csv(results / "calibration_plan.csv", plan)
        for r in plan:
            chosen = ("none" if r["validation_rho"] is None else
                      f"{r['validation_rho']:g} (cut {r['validation_cut_pct']:.1f}%)")
            log.info("%s, %g points: %d calibration samples can likely certify rho %s (cut %.1f%%); the validation "
                     "rule's rho %s needs %d", r["model"], r["budget_points"], r["calibration_samples"],
                     r["planned_rho_wsr"], r["planned_cut_pct_wsr"], chosen, r["samples_to_certify_validation_wsr"])
    if not cfg.study:
        return plan
    rows = []
    for model in cfg.models:
        data = resplit.pooled(results, model, task.baseline)
        if data is None:
            log.warning("%s: no cached outputs with a max-softmax early exit in %s (run %s.test): left out", model,
                        paths.portable(results), task.name)
            continue
        for measure in resplit.MEASURES:
            runs = resplit.study(data, cfg.splits, cfg.max_drop / 100, cfg.delta, cfg.seed, measure=measure)
            rows += resplit.summarise(model, runs, cfg.max_drop / 100, cfg.delta, len(data.labels), measure)
        for r in rows[-2 * len(resplit.RULES):]:
            log.info("%s %-10s on the %s: budget broken in %.1f%% of splits [%.1f, %.1f], mean cut %.1f%%",
                     model, r["rule"], r["measured_on"], 100 * r["violation_rate"], 100 * r["violation_ci95_low"],
                     100 * r["violation_ci95_high"], r["mean_cut_pct"])
    if not rows:
        raise ConfigError(f"none of {', '.join(cfg.models)} has cached outputs in {results}: run {task.name}.test")
    for r in rows:  # what the pooled study measures, in its own rows
        r["sees_selection"] = "no: one fixed model's samples pooled (see calibration_selection.csv)"
    write_csv(results / "calibration_study.csv", rows)
    if cfg.selection_rounds:
        write_csv(results / "calibration_selection.csv", selection_study(cfg, results, task.baseline))
    plots.calibration_study(rows, results / "calibration_study.png", cfg.delta,
                            title=f"{task.name}: {cfg.max_drop:g}-point budget, {cfg.splits} splits")
    return rows


def selection_study(cfg: CalibrationConfig, results: Path, baseline: str) -> list[dict]:
    """The selection study over every tested variant's pooled outputs (`studies.selection`)."""
    parts = tuple(p for p in ("val", CALIBRATION, "test") if p in _parts(results / baseline / "outputs.npz"))
    cands = selection.candidates(results, baseline, parts)
    if len(cands) < 2:
        raise ConfigError(f"the selection study needs two or more tested variants in {results}: run the task's test")
    pool = len(next(iter(cands.values())).labels)
    runs = selection.study(cands, cfg.selection_rounds, 0, cfg.max_drop / 100, cfg.delta, cfg.seed)
    out = selection.summarise(runs, len(cands), pool, pool // 3, cfg.max_drop / 100, cfg.delta)
    for r in out:
        log.info("selection study, certified on %s: budget broken in %.1f%% of %d rounds [%.1f, %.1f] (delta %g)",
                 r["certified_on"], 100 * r["violation_rate"], r["rounds"], 100 * r["violation_ci95_low"],
                 100 * r["violation_ci95_high"], cfg.delta)
    return out


def _parts(npz: Path) -> set[str]:
    with np.load(npz) as z:
        return {k.split("/", 1)[0] for k in z.files if "/" in k}


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(CalibrationConfig, None, argv, description=__doc__, required=("task",)))
