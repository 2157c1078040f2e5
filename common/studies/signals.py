"""How close each exit signal comes to what its own network allows (`evaluation.signals`), per tested model.

The limit is the perfect signal (`signals.limit`): every sample leaves at the earliest exit whose class is the
final exit's. Each rule (a signal and one shared threshold) is measured three ways, on test.py's cached float
outputs (`outputs.npz`):
- picked on validation: its threshold the cheapest within the budget on validation, its cut and drop on test;
  the fitted signals (temperature, gate) are fitted on validation, and their validation numbers are cross-fitted
  (each half scored by the signal fitted on the other half) so that no rule is judged on the data that fitted it;
- tuned on test (an upper bound, for its share of the limit only): the cheapest threshold within the budget on
  test itself; the same for every rule and for the limit, so the shares compare like with like;
- certified on the calibration split (`thresholds.choose("certified")`) at 1, 2, 3, 5 and 10 points, and what
  that threshold gives on test.
The rule a model should ship is picked on validation, and only for a margin over max softmax beyond its noise: a
95% paired bootstrap interval over validation samples, each rule's threshold chosen again on every resample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluation import signals, sweep, thresholds
from .resplit import Pooled, pooled

BUDGETS = (1, 2, 3, 5, 10)  # points below the baseline certified on the calibration split
PARTS = ("val", "calibration", "test")


def parts(results: Path, model: str, baseline: str) -> dict[str, Pooled] | None:
    """The model's cached outputs on validation, calibration and test (None: no max-softmax exits cached)."""
    got = {p: pooled(results, model, baseline, parts=(p,)) for p in PARTS}
    return None if any(v is None for v in got.values()) or len(got["val"].probs) < 2 else got


def _grid(name: str) -> np.ndarray:
    return sweep.RHOS if name == "max_softmax" else sweep.CONFIDENCE_RHOS


def crossfit(name: str, d: Pooled, seed: int = 0) -> list[np.ndarray]:
    """The early exits' scores on `d`, each half scored by the signal fitted on the other half (a fitted signal);
    the signal's own scores otherwise."""
    if name not in signals.FITTED:
        return signals.Signal(name).scores(d.probs)
    n = len(d.labels)
    half = np.zeros(n, bool)
    half[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
    out = [np.zeros(n) for _ in d.probs[:-1]]
    for fold in (half, ~half):
        sig = signals.fit(name, [p[~fold] for p in d.probs], d.labels[~fold])
        for k, s in enumerate(sig.scores([p[fold] for p in d.probs])):
            out[k][fold] = s
    return out


def _curve(d: Pooled, conf: list[np.ndarray], name: str, idx: np.ndarray | None = None) -> dict:
    if idx is not None:
        d = Pooled([p[idx] for p in d.probs], d.labels[idx], d.base_right[idx], d.costs, d.base_mflops)
        conf = [c[idx] for c in conf]
    c = sweep.sweep(d.probs, d.labels, d.costs, _grid(name), conf)
    return c | {"base_acc": float(d.base_right.mean()), "cut": 100 * (1 - c["mflops"] / d.base_mflops)}


def _best(curve: dict, budget: float) -> int | None:
    """The cheapest threshold (then the highest) within `budget` points of the baseline on that curve."""
    ok = np.flatnonzero(curve["accuracy"] >= curve["base_acc"] - budget / 100 - 1e-12)
    return None if not len(ok) else int(ok[np.lexsort((-curve["rho"][ok], curve["mflops"][ok]))[0]])


def _cut(curve: dict, budget: float) -> float:
    i = _best(curve, budget)
    return 0.0 if i is None else float(curve["cut"][i])


def limit_cut(d: Pooled) -> float:
    return 100 * (1 - signals.limit(d.probs, d.costs)["mflops"] / d.base_mflops)


def margin(d: Pooled, a: list[np.ndarray], b: list[np.ndarray], names: tuple[str, str], budget: float = 1,
           rounds: int = 400, seed: int = 0) -> list[float]:
    """95% paired bootstrap interval (points) of rule a's validation cut minus rule b's, thresholds chosen again
    on every resample."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(d.labels), len(d.labels))
        diffs.append(_cut(_curve(d, a, names[0], idx), budget) - _cut(_curve(d, b, names[1], idx), budget))
    return [float(v) for v in np.percentile(diffs, [2.5, 97.5])]


def _at(d: Pooled, conf: list[np.ndarray], rho: float | None) -> tuple[float | None, float | None]:
    """(cut, drop) in % and points on `d` at threshold rho exactly (None: nothing chosen)."""
    if rho is None:
        return None, None
    cost, loss = _run(d, conf, rho)
    return float(100 - cost.mean()), float(100 * loss.mean())


def _run(d: Pooled, conf: list[np.ndarray], rho: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per sample at threshold rho (None: the full network): its cost as a % of the baseline's, and its paired loss
    against the baseline (baseline right minus right)."""
    taken = sweep.exits_taken(d.probs, [np.inf if rho is None else rho], conf)[0]
    pred = np.stack([p.argmax(axis=1) for p in d.probs])[taken, np.arange(len(d.labels))]
    cost = 100 * np.asarray(d.costs, dtype=np.float64)[taken] / d.base_mflops
    return cost, d.base_right.astype(np.float64) - (pred == d.labels)


def study(data: dict[str, Pooled], budget: float = 1, delta: float = 0.05, rounds: int = 400,
          seed: int = 0) -> list[dict]:
    """One row per rule for one model's `data` (`parts`): see the module docstring."""
    val, cal, test = data["val"], data["calibration"], data["test"]
    lim = {"val_limit_cut_pct": limit_cut(val), "test_limit_cut_pct": limit_cut(test),
           "test_oracle_cut_pct": 100 * (1 - sweep.oracle(test.probs, test.labels, test.costs)["mflops"]
                                         / test.base_mflops),
           "test_final_drop_points": 100 * float(test.base_right.mean()
                                                  - (test.probs[-1].argmax(axis=1) == test.labels).mean())}
    rows, val_conf, test_conf, picked = [], {}, {}, {}
    for name in signals.SIGNALS:
        sig = signals.fit(name, val.probs, val.labels)
        val_conf[name] = crossfit(name, val, seed)
        test_conf[name] = sig.scores(test.probs)
        vc, tc = _curve(val, val_conf[name], name), _curve(test, test_conf[name], name)
        i = _best(vc, budget)
        rho = None if i is None else float(vc["rho"][i])
        test_cut, test_drop = _at(test, test_conf[name], rho)
        tuned = _cut(tc, budget)
        row = {"signal": name, "params": sig.describe()["params"], "fitted_on": sig.fitted_on, **lim,
               "val_cut_pct": _cut(vc, budget), "val_rho": rho, "test_cut_pct": test_cut,
               "test_drop_points": test_drop,
               "test_share_of_limit": None if test_cut is None else test_cut / lim["test_limit_cut_pct"],
               "test_cut_tuned_pct": tuned, "test_share_of_limit_tuned": tuned / lim["test_limit_cut_pct"]}
        cost, loss = _run(test, test_conf[name], rho)
        picked[name] = cost
        row["test_drop_ci95"] = [100 * v for v in thresholds.paired_interval(loss, seed=seed)]
        cal_conf = None if name == "max_softmax" else sig.scores(cal.probs)  # max softmax on deploy's 0.01 grid
        smallest = None
        for b in BUDGETS:
            got = thresholds.choose("certified", cal.probs, cal.labels, cal.costs, cal.base_right, b / 100, delta,
                                    seed=seed, confidences=cal_conf)
            row[f"certified_{b}pt_rho"] = got.rho
            row[f"certified_{b}pt_test_cut_pct"], row[f"certified_{b}pt_test_drop_points"] = _at(
                test, test_conf[name], got.rho)
            smallest = smallest or (b if got.ok else None)
        row["smallest_certified_points"] = smallest
        rows.append(row)
    for row in rows:
        name = row["signal"]
        # the test cut over max softmax's, both at their validation-picked thresholds, samples resampled together
        row["test_cut_over_max_softmax_ci95"] = None if name == "max_softmax" else thresholds.paired_interval(
            picked["max_softmax"] - picked[name], seed=seed)
        row["val_margin_ci95"] = None if name == "max_softmax" else margin(
            val, val_conf[name], val_conf["max_softmax"], (name, "max_softmax"), budget, rounds, seed)
    pick = max(rows, key=lambda r: r["val_cut_pct"])
    ship = pick if pick["val_margin_ci95"] is not None and pick["val_margin_ci95"][0] > 0 else rows[0]
    for row in rows:
        row["best_on_validation"] = row is pick
        row["ships"] = row is ship
    return rows
