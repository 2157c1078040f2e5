"""How much each exit signal leaves on the table (a benchmark, not a test): python -m common signals --task T

For every tested model of results/<task>/ with max-softmax early exits and cached outputs (test.py's
`outputs.npz`), the limit (the perfect signal: each sample leaves at the earliest exit that agrees with the final
one) and, per exit signal (`evaluation.signals`), the test cut picked on validation and tuned on test (an upper
bound) as shares of the limit, the cuts certified on the calibration split, and the rule to ship: picked on
validation, only beyond its noise (`studies.signals`). Writes results/<task>/signals.csv, signals_targets.csv and
signals.png; and, for a deployment on another signal run on a board beside a max-softmax deployment of the same
graphs, what the signal costs there (signals_board.csv). The study's numbers are on the float outputs;
`deploy --signal` certifies a rule on the int8 outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..files import write_csv
from ..reporting import signals as signal_report
from ..reporting.targets import row
from ..studies import plots
from ..studies import signals as study

log = logging.getLogger("trecx.signals")
TARGET_MODELS = {"image_classification": ("trecx2", 1), "keyword_spotting": ("trecx2", None)}  # model, budget
SHARE_TARGET, CUT_RISE_TARGET = 0.90, 3.0  # the best rule's share of the limit; its certified cut over max softmax
GATE_TARGET = 2.0  # the gate's instructions on a board, % of the baseline's at most


@dataclass
class SignalsConfig:
    """Options of `python -m common signals`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    models: tuple[str, ...] = ()  # tested models of results/<task>/ (empty: every shipped early-exit model)
    budget: float = 1.0  # points below the baseline for the picked and tuned cuts
    delta: float = 0.05  # of the certified rule
    rounds: int = 400  # bootstrap resamples of the validation margin
    seed: int = 0
    results_dir: str = ""  # "" = results/<task>
    models_dir: str = ""  # "" = pretrained/<task>: the shipped models


def run(cfg: SignalsConfig) -> list[dict]:
    task = tasks.get(cfg.task)
    if cfg.budget <= 0 or not 0 < cfg.delta < 1 or cfg.rounds < 1:
        raise ConfigError(f"--budget must be above 0, --delta in (0, 1), --rounds at least 1 (got {cfg.budget}, "
                          f"{cfg.delta}, {cfg.rounds})")
    results = Path(cfg.results_dir or paths.results_dir() / task.name)
    shipped = Path(cfg.models_dir or paths.pretrained_dir(task.name))
    models = cfg.models or tuple(sorted(p.stem for p in shipped.glob("*.keras") if p.stem != task.baseline))
    rows = []
    for model in models:
        data = study.parts(results, model, task.baseline)
        if data is None:
            log.info("%s: no cached max-softmax early exits on val, calibration and test: left out", model)
            continue
        got = study.study(data, cfg.budget, cfg.delta, cfg.rounds, cfg.seed)
        rows += [{"model": model, **r} for r in got]
        ship = next(r for r in got if r["ships"])
        log.info("%s: limit %.1f%% (test); max softmax %.0f%% of it (tuned on test), best on validation %s; ships %s",
                 model, got[0]["test_limit_cut_pct"], 100 * got[0]["test_share_of_limit_tuned"],
                 next(r["signal"] for r in got if r["best_on_validation"]), ship["signal"])
    if not rows:
        raise ConfigError(f"no model of {paths.portable(shipped)} has cached outputs in {paths.portable(results)}: "
                          f"run {task.name}.test first")
    write_csv(results / "signals.csv", rows)
    board = signal_report.board_rows(results)  # deployments on another signal, run on a board
    write_csv(results / "signals_targets.csv", targets(task.name, rows, board))
    plots.signal_shares(rows, results / "signals.png", f"{task.name}: exit signals against the limit")
    if board:
        write_csv(results / "signals_board.csv", board)
        for r in board:
            log.info("%s on %s: the %s signal costs %.0f instructions per sample, %.4f%% of the baseline's",
                     r["folder"], r["board"], r["signal"], r["signal_instructions_per_sample"],
                     r["signal_pct_of_baseline"])
    return rows


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def targets(task: str, rows: list[dict], board: list[dict] = ()) -> list[dict]:
    """The exit-signal targets of `task`'s target model, in the one row shape of every targets file: the rule best
    on validation reaches SHARE_TARGET of the limit at the budget on test (tuned on test, as the limit is), and its
    certified cut rises CUT_RISE_TARGET points over max softmax's at the budget (IC: 1 point; else the smallest
    budget max softmax certifies), both on the same calibration split; and each gate run on a board (`board`,
    `reporting.signals.board_rows`) costs at most GATE_TARGET % of the baseline's instructions."""
    gates = [row(f"{b['folder']}: the gate's instructions on {b['board']}, % of the baseline's", task,
                 b["signal_pct_of_baseline"], GATE_TARGET, b["signal_pct_of_baseline"] <= GATE_TARGET,
                 f"{b['signal_instructions_per_sample']:.0f} instructions per sample beside {b['beside']}")
             for b in board if b["signal"] == "gate"]
    if task not in TARGET_MODELS:
        return [*gates, row("exit signals: no target for this task", task, None, None, None)]
    model, budget = TARGET_MODELS[task]
    mine = [r for r in rows if r["model"] == model]
    if not mine:
        return [*gates, row(f"exit signals of {model}", task, None, None, False, "no cached outputs: run test.py")]
    best = next(r for r in mine if r["best_on_validation"])
    ms = next(r for r in mine if r["signal"] == "max_softmax")
    share = best["test_share_of_limit_tuned"]
    note = f"{best['signal']}; max softmax {ms['test_share_of_limit_tuned']:.2f}"
    what = f"{model}: the rule best on validation reaches its share of the limit (test, tuned on test)"
    out = [*gates, row(what, task, share, SHARE_TARGET, share >= SHARE_TARGET, note, model=model, rule=best["signal"])]
    budget = budget or ms["smallest_certified_points"]
    what = f"{model}: certified FLOPs cut (test) over max softmax's, points, at {budget} pt (calibration split)"
    if budget is None:
        return [*out, row(what, task, None, CUT_RISE_TARGET, False, "max softmax certifies no budget",
                          model=model, rule=best["signal"])]
    cut, base = best.get(f"certified_{budget}pt_test_cut_pct"), ms.get(f"certified_{budget}pt_test_cut_pct")
    rise = None if cut is None else cut - (base or 0.0)
    note = f"{best['signal']} {_round(cut)} vs max softmax {_round(base)}"
    return [*out, row(what, task, rise, CUT_RISE_TARGET, rise is not None and rise >= CUT_RISE_TARGET, note,
                      model=model, rule=best["signal"])]


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(SignalsConfig, None, argv, description=__doc__))
