"""Thresholds with a guarantee: choose rho so that, on new samples from the same distribution, the accuracy
drop against the baseline exceeds the budget with probability at most delta (pure NumPy and SciPy).

The naive rule (`sweep.tradeoffs`: the cheapest rho whose calibration accuracy is within the budget) breaks
its promise about half the time on unseen data: it tests every rho and keeps the cheapest that passes. Here
each rho is a hypothesis H_rho: "its expected drop exceeds the budget", tested with a valid finite-sample
p-value; Learn-then-Test (Angelopoulos, Bates, Candes, Jordan, Lei, "Learn then Test: Calibrating
Predictive Algorithms to Achieve Risk Control", 2021) with fixed-sequence testing walks the rhos from the
most conservative (1.0: almost no sample exits early) down, rejecting at level delta until the first rho
it cannot reject; every rejected rho then keeps its drop within the budget with probability >= 1 - delta
jointly, and the cheapest of them is deployed. No correction for the number of rhos is needed: the order
is fixed before the data is seen.

Per calibration sample the paired loss is (baseline right) - (early-exit runtime right), in {-1, 0, 1};
its mean is the drop. Two p-values for "mean >= budget", both valid for losses bounded in an interval:
- "wsr": a betting test (Waudby-Smith & Ramdas, "Estimating means of bounded random variables by
  betting", JRSS-B 2023; predictable plug-in bets, Ville's inequality); it adapts to the small variance of a
  loss that is 0 on most samples, so it certifies more. The samples are bet on in a seeded random order.
- "hb": Hoeffding-Bentkus (Bates, Angelopoulos, Lei, Malik, Jordan, "Distribution-free, risk-controlling
  prediction sets", JACM 2021, Sec. 3), which ignores the variance.
Label-free (`calibrate_label_free`): the loss is "the early-exit runtime disagrees with the model's own final
exit", in {0, 1}, with the exact binomial p-value; it bounds the drop against the model's own final exit,
so it needs no labels (unlabeled field data calibrates it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from common.evaluation import sweep

METHODS = ("wsr", "hb")


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold (None: no rho is certified, keep the full model) and what the test said."""

    rho: float | None
    certified: tuple[float, ...]  # every rho rejected before the first that could not be (cheapest chosen)
    p_values: dict[float, float]  # the p-value of every rho tested, in the order tested
    max_drop: float  # the budget, as a fraction (0.01: one point)
    delta: float
    method: str


def hoeffding_bentkus_p(mean: np.ndarray, n: int, target: float) -> np.ndarray:
    """p-values of H0 "the mean of n i.i.d. [0, 1] losses is >= target", given their sample means."""
    mean = np.asarray(mean, dtype=np.float64)
    a = np.clip(np.minimum(mean, target), 1e-12, 1 - 1e-12)
    kl = a * np.log(a / target) + (1 - a) * np.log((1 - a) / (1 - target))  # h1(a, target)
    hoeffding = np.exp(-n * kl)
    bentkus = np.e * stats.binom.cdf(np.ceil(n * mean), n, target)
    return np.minimum(1.0, np.minimum(hoeffding, bentkus))


def betting_p(z: np.ndarray, target: float, delta: float = 0.05) -> np.ndarray:
    """p-values of H0 "the mean of the i.i.d. [0, 1] losses is >= target", one per row of z (R, n), from the
    wealth of betting that the mean is below `target` (predictable plug-in bets, capped at half of what
    keeps the wealth non-negative)."""
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[-1]
    i = np.arange(1, n + 1)
    mu = (0.5 + np.cumsum(z, axis=-1)) / (i + 1)  # running mean including sample i
    var = (0.25 + np.cumsum((z - mu) ** 2, axis=-1)) / (i + 1)
    prev_var = np.concatenate([np.full((*z.shape[:-1], 1), 0.25), var[..., :-1]], axis=-1)  # before sample i
    lam = np.minimum(np.sqrt(2 * np.log(1 / delta) / (n * prev_var)), 0.5 / (1 - target))
    log_wealth = np.cumsum(np.log1p(lam * (target - z)), axis=-1)
    return np.minimum(1.0, np.exp(-np.maximum(log_wealth.max(axis=-1), 0.0)))


def p_values(loss: np.ndarray, bound: float, delta: float, method: str) -> np.ndarray:
    """p-value per row of `loss` (R, n) in [-1, 1] of H0 "its mean is >= bound", by `method`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    z, target = (loss + 1) / 2, (bound + 1) / 2  # onto [0, 1]
    if method == "hb":
        return hoeffding_bentkus_p(z.mean(axis=-1), z.shape[-1], target)
    return betting_p(z, target, delta)


def fixed_sequence(p: np.ndarray, rhos: np.ndarray, mflops: np.ndarray, delta: float) -> tuple[float | None, list]:
    """Test the rhos from the highest down at level delta, stopping at the first not rejected; the cheapest
    rejected rho (None when the first is not rejected) and every rejected one."""
    order = np.argsort(-rhos, kind="stable")
    rejected = []
    for k in order:
        if p[k] > delta:
            break
        rejected.append(int(k))
    if not rejected:
        return None, []
    best = min(rejected, key=lambda k: (mflops[k], -rhos[k]))
    return float(rhos[best]), [float(rhos[k]) for k in rejected]


def _shuffled(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def calibrate(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
              max_drop: float = 0.01, delta: float = 0.05, method: str = "wsr", rhos: np.ndarray | None = None,
              seed: int = 0) -> Calibration:
    """The cheapest rho whose accuracy drop against the baseline (per-sample correctness `base_right`) is
    certified to stay within `max_drop` with probability >= 1 - delta (see the module docstring).
    probs: K arrays (N, classes) in exit order, the final exit last; costs: K cumulative MFLOPs."""
    rhos = sweep.RHOS if rhos is None else np.asarray(rhos, dtype=np.float64)
    order = _shuffled(len(labels), seed)  # betting needs an order independent of the data (splits may be sorted)
    probs, labels, base_right = [p[order] for p in probs], labels[order], np.asarray(base_right)[order]
    taken = sweep.exits_taken(probs, rhos)  # (R, N)
    preds = np.stack([p.argmax(axis=1) for p in probs])[taken, np.arange(len(labels))]
    loss = base_right[None, :].astype(np.float64) - (preds == labels[None, :])
    p = p_values(loss, max_drop, delta, method)
    mflops = np.asarray(costs, dtype=np.float64)[taken].mean(axis=1)
    rho, certified = fixed_sequence(p, rhos, mflops, delta)
    tested = np.argsort(-rhos, kind="stable")[: len(certified) + 1]
    return Calibration(rho, tuple(certified), {float(rhos[k]): float(p[k]) for k in tested}, max_drop, delta, method)


def calibrate_label_free(probs: list[np.ndarray], costs: list[float], max_disagreement: float = 0.01,
                         delta: float = 0.05, rhos: np.ndarray | None = None) -> Calibration:
    """The cheapest rho whose disagreement with the model's own final exit is certified to stay within
    `max_disagreement` with probability >= 1 - delta: no labels needed (exact binomial p-values)."""
    rhos = sweep.RHOS if rhos is None else np.asarray(rhos, dtype=np.float64)
    taken = sweep.exits_taken(probs, rhos)
    n = len(probs[0])
    preds = np.stack([p.argmax(axis=1) for p in probs])
    disagree = (preds[taken, np.arange(n)] != preds[-1][None, :]).sum(axis=1)
    p = stats.binom.cdf(disagree, n, max_disagreement)  # H0: the disagreement rate is >= max_disagreement
    mflops = np.asarray(costs, dtype=np.float64)[taken].mean(axis=1)
    rho, certified = fixed_sequence(p, rhos, mflops, delta)
    tested = np.argsort(-rhos, kind="stable")[: len(certified) + 1]
    return Calibration(rho, tuple(certified), {float(rhos[k]): float(p[k]) for k in tested}, max_disagreement,
                       delta, "binomial (label-free)")


def naive_rho(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
              max_drop: float = 0.01, rhos: np.ndarray | None = None) -> float | None:
    """The rule of `sweep.tradeoffs` on one calibration set: the cheapest rho (then the highest) whose
    accuracy is within `max_drop` of the baseline's on it; None when none is."""
    curve = sweep.sweep(probs, labels, costs, rhos)
    ok = np.flatnonzero(curve["accuracy"] >= np.mean(base_right) - max_drop - 1e-12)
    if not len(ok):
        return None
    return float(curve["rho"][ok[np.lexsort((-curve["rho"][ok], curve["mflops"][ok]))[0]]])
