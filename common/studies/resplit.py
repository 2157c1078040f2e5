"""Does a threshold rule keep its promise on unseen data? A re-split study over a model's cached outputs.

A model's validation and test outputs (`<model>/outputs.npz`, written by test.py) and its baseline's are
pooled, then split at random into two halves many times: a rule chooses rho on one half (calibration) and
the other half (evaluation) measures what it gave: a violation is an accuracy drop against the baseline
beyond the budget there. The rules, named as in `evaluation.thresholds`: `validation` (the cheapest rho within
the budget on the data it is given, as `sweep.tradeoffs`), `wsr` and `hb` (Learn-then-Test with a betting or a
Hoeffding-Bentkus p-value), and `label_free` (Learn-then-Test on disagreement with the model's own final exit; no
labels). A rule that certifies no rho keeps the full model (cut 0): counted as an abstention, not a violation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ..evaluation import calibrate, pvalues, sweep, thresholds
from ..evaluation.summary import load

RULES = ("validation", "wsr", "hb", "label_free")  # `certified` with each p-value: wsr, hb
MEASURES = ("held-out half", "pooled population")


@dataclass
class Pooled:
    """A model's exits on the pooled validation and test samples, with the baseline's correctness."""

    probs: list[np.ndarray]  # K arrays (N, classes), the final exit last
    labels: np.ndarray
    base_right: np.ndarray  # (N,) bool
    costs: list[float]  # K cumulative MFLOPs
    base_mflops: float


def pooled(results: Path, model: str, baseline: str, parts: tuple[str, ...] = ("val", "test")) -> Pooled | None:
    """The outputs of `model` on the cached `parts` (test.py's outputs.npz) pooled, with the baseline's
    correctness; None when it has no cached outputs or thresholds learnt confidences."""
    s, base = load(results, model), results / baseline / "outputs.npz"
    npz = results / model / "outputs.npz"
    if s is None or s.early is None or s.baseline is None or not npz.exists() or not base.exists():
        return None
    with np.load(npz) as z, np.load(base) as b:
        if {k.split("/", 1)[1] for k in z.files if "/" in k} != {*s.exits, "labels"}:
            return None  # confidence heads (EENets, PTEENet): not thresholded on max softmax
        labels = np.concatenate([z[f"{p}/labels"] for p in parts])
        probs = [np.concatenate([z[f"{p}/{e}"] for p in parts]) for e in s.exits]
        base_pred = np.concatenate([b[f"{p}/final"].argmax(axis=1) for p in parts])
    return Pooled(probs, labels, base_pred == labels, [s.mflops(e) for e in s.exits], s.baseline.mflops)


def choose(rule: str, probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
           max_drop: float, delta: float) -> float | None:
    """The rho a rule chooses on one calibration set (None: the full model), through `evaluation.thresholds`
    ("wsr" and "hb": its "certified" rule with that p-value)."""
    name, method = ("certified", rule) if rule in pvalues.METHODS else (rule, "wsr")
    return thresholds.choose(name, probs, labels, costs, base_right, max_drop, delta, method).rho


def study(data: Pooled, splits: int = 500, max_drop: float = 0.01, delta: float = 0.05, seed: int = 0,
          rules: tuple[str, ...] = RULES, measure: str = "held-out half") -> dict[str, dict[str, np.ndarray]]:
    """Per rule, per split: the chosen rho (nan: none), and what it gives (drop in points, FLOPs cut in %,
    disagreement with the final exit) measured on `measure`: "held-out half" (calibrate on a random half,
    measure on the other) or "pooled population" (calibrate on n/2 samples drawn with replacement from the
    pooled set, measure on all of it: the exact risk under the distribution the draws come from, which is
    what the guarantee is about; the held-out half adds its own sampling noise)."""
    n = len(data.labels)
    rhos = sweep.RHOS
    taken = sweep.exits_taken(data.probs, rhos)  # (R, N), every rho on every pooled sample
    preds = np.stack([p.argmax(axis=1) for p in data.probs])
    pred = preds[taken, np.arange(n)]
    right, disagree = pred == data.labels[None, :], pred != preds[-1][None, :]
    cost = np.asarray(data.costs, dtype=np.float64)[taken]
    rng = np.random.default_rng(seed)
    out = {r: {k: np.full(splits, np.nan) for k in ("rho", "drop_points", "cut_pct", "disagreement")} for r in rules}
    for i in range(splits):
        if measure == "held-out half":
            perm = rng.permutation(n)
            cal, ev = perm[: n // 2], perm[n // 2:]
        else:
            cal, ev = rng.integers(0, n, n // 2), np.arange(n)
        for rule in rules:
            rho = choose(rule, [p[cal] for p in data.probs], data.labels[cal], data.costs, data.base_right[cal],
                         max_drop, delta)
            if rho is None:  # the full model: every sample at the final exit
                got_right = preds[-1][ev] == data.labels[ev]
                got_cost, got_dis = np.full(len(ev), data.costs[-1]), np.zeros(len(ev), bool)
            else:
                k = int(np.flatnonzero(np.isclose(rhos, rho))[0])
                got_right, got_cost, got_dis = right[k, ev], cost[k, ev], disagree[k, ev]
            rec = out[rule]
            rec["rho"][i] = np.nan if rho is None else rho
            rec["drop_points"][i] = 100 * (data.base_right[ev].mean() - got_right.mean())
            rec["cut_pct"][i] = 100 * (1 - got_cost.mean() / data.base_mflops)
            rec["disagreement"][i] = got_dis.mean()
    return out


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact two-sided interval of a binomial proportion k / n."""
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return low, high


def summarise(model: str, runs: dict[str, dict[str, np.ndarray]], max_drop: float, delta: float,
              samples: int, measure: str = "held-out half") -> list[dict]:
    """One row per rule: how often it broke the budget on the evaluation half, and what it saved."""
    rows = []
    for rule, rec in runs.items():
        n = len(rec["rho"])
        chosen = ~np.isnan(rec["rho"])
        violated = chosen & (rec["drop_points"] > 100 * max_drop + 1e-9)
        low, high = clopper_pearson(int(violated.sum()), n)
        rows.append({"model": model, "rule": rule, "measured_on": measure, "pooled_samples": samples, "splits": n,
                     "max_drop_points": 100 * max_drop, "delta": delta,
                     "violation_rate": float(violated.mean()), "violation_ci95_low": low, "violation_ci95_high": high,
                     "abstain_rate": float(1 - chosen.mean()), "mean_cut_pct": float(rec["cut_pct"].mean()),
                     "median_cut_pct": float(np.median(rec["cut_pct"])),
                     "mean_drop_points": float(rec["drop_points"].mean()),
                     "disagreement_violation_rate": float((chosen & (rec["disagreement"] > max_drop + 1e-12)).mean())})
    return rows


def plan(results: Path, model: str, baseline: str, budgets: tuple[float, ...] = (0.01, 0.02, 0.03),
         delta: float = 0.05, samples: int = 0) -> list[dict]:
    """What the task's calibration split (`samples` of them; 0: as many as validation) can certify, by the
    planner (`calibrate.likely_certified`, `samples_needed`) with the model's validation outputs as the pilot.
    Per budget: the cheapest rho the planner expects that many samples to certify (walking the rhos from 1.0
    down, as fixed-sequence testing does) and its FLOPs cut there, per p-value; the rho the validation rule picks and
    how many labelled samples would certify it (-1: never, its drop there is the budget's or more); the budget
    that many samples certify with a zero loss. Empty when the model has no cached max-softmax outputs."""
    val = pooled(results, model, baseline, ("val",))
    if val is None:
        return []
    probs, labels, base_right, costs = val.probs, val.labels, val.base_right, val.costs
    n, rows = samples or len(labels), []
    taken = sweep.exits_taken(probs, sweep.RHOS)  # (R, pilot samples)
    right = np.stack([p.argmax(axis=1) for p in probs])[taken, np.arange(len(labels))] == labels[None, :]
    loss = base_right[None, :].astype(float) - right
    disagreement, drop = np.mean(loss != 0, axis=1), np.mean(loss, axis=1)
    cut = 100 * (1 - np.asarray(costs)[taken].mean(axis=1) / val.base_mflops)
    for budget in budgets:
        row = {"model": model, "budget_points": 100 * budget, "delta": delta, "calibration_samples": n,
               "pilot": f"{len(labels)} validation samples"}
        for m in pvalues.METHODS:
            best = None
            for k in np.argsort(-sweep.RHOS, kind="stable"):
                if not calibrate.likely_certified(float(disagreement[k]), budget, n, delta, max(float(drop[k]), 0.0),
                                                  m):
                    break
                best = k if best is None or cut[k] > cut[best] else best
            row |= {f"planned_rho_{m}": None if best is None else float(sweep.RHOS[best]),
                    f"planned_cut_pct_{m}": 0.0 if best is None else float(cut[best]),
                    f"zero_loss_budget_points_{m}": 100 * calibrate.zero_loss_budget(n, delta, m)}
        chosen = thresholds.choose("validation", probs, labels, costs, base_right, budget).rho
        k = None if chosen is None else int(np.flatnonzero(np.isclose(sweep.RHOS, chosen))[0])
        row |= {"validation_rho": chosen, "validation_cut_pct": None if k is None else float(cut[k]),
                "validation_disagreement": None if k is None else float(disagreement[k]),
                "validation_drop_points": None if k is None else 100 * float(drop[k]),
                "samples_to_certify_validation_wsr": -1 if k is None or drop[k] >= budget else
                calibrate.samples_needed(float(disagreement[k]), budget, delta, max(float(drop[k]), 0.0))}
        rows.append(row)
    return rows
