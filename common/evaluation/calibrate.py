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
  prediction sets", JACM 2021, Sec. 3) on each tail of the loss apart (P(+1) and P(-1), each at delta / 2):
  exact for rare events, it ignores the variance otherwise.
Label-free (`calibrate_label_free`): the loss is "the early-exit runtime disagrees with the model's own final
exit", in {0, 1}, with the exact binomial p-value; it bounds the drop against the model's own final exit,
so it needs no labels (unlabeled field data calibrates it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import sweep
from .pvalues import p_values

OUTPUTS_FLOAT, OUTPUTS_INT8 = "float Keras outputs", "int8 graph outputs"  # Calibration.outputs
LABEL_FREE = "binomial (label-free)"  # the method of `calibrate_label_free`


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold (None: no rho is certified, keep the full model) and what the test said."""

    rho: float | None
    certified: tuple  # every rho (or vector) rejected before the first that could not be (cheapest chosen)
    p_values: dict  # the p-value of every rho (or vector, as a string) tested, in the order tested
    max_drop: float  # the budget, as a fraction (0.01: one point)
    delta: float
    method: str
    rhos: tuple[float, ...] | None = None  # a threshold per early exit (`calibrate_per_exit`); else `rho` is shared
    samples: str = ""  # what the certificate was computed on (how many samples, which part)
    outputs: str = ""  # whose outputs it certified: OUTPUTS_FLOAT (the Keras model) or OUTPUTS_INT8 (the graphs)
    signal: object = None  # the exit signal thresholded (`signals.Signal`); None: max softmax

    @property
    def ok(self) -> bool:
        """Whether anything was certified (else the full model runs)."""
        return self.rho is not None or self.rhos is not None

    def thresholds(self, exits: int) -> list[float] | None:
        """One threshold per early exit; None when nothing was certified."""
        if self.rhos is not None:
            return list(self.rhos)
        return None if self.rho is None else [self.rho] * exits


def fixed_sequence(p: np.ndarray, rhos: np.ndarray, mflops: np.ndarray, delta: float) -> tuple[float | None, list]:
    """Test the rhos from the highest down at level delta, stopping at the first not rejected; the cheapest
    rejected rho (None when the first is not rejected) and every rejected one."""
    best, rejected = _walk(p, np.argsort(-rhos, kind="stable"), mflops, delta, -rhos)
    return (None, []) if best is None else (float(rhos[best]), [float(rhos[k]) for k in rejected])


def _walk(p: np.ndarray, order, mflops: np.ndarray, delta: float, tie: np.ndarray) -> tuple[int | None, list[int]]:
    """Fixed-sequence testing: reject in `order` while p <= delta (a NaN p-value never rejects); the cheapest
    rejected hypothesis (ties: the lower `tie`) and every rejected one."""
    rejected = []
    for k in order:
        if not p[k] <= delta:
            break
        rejected.append(int(k))
    if not rejected:
        return None, []
    return min(rejected, key=lambda k: (mflops[k], tie[k])), rejected


def check(probs: list[np.ndarray], labels: np.ndarray | None, costs: list[float], base_right: np.ndarray | None,
          max_drop: float, delta: float, what: str = "max_drop") -> None:
    """A one-line ValueError for arguments no guarantee can come from: a budget or delta outside (0, 1) (a budget
    of 1 or more certifies every rho; it looks like points, where a fraction is meant), exits, costs, labels and
    baseline correctness of different lengths."""
    if not 0 < max_drop < 1:
        hint = f" (points? {max_drop:g} points is {max_drop / 100:g})" if 1 <= max_drop <= 100 else ""
        raise ValueError(f"{what} must be a fraction in (0, 1), got {max_drop:g}{hint}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta:g}")
    if len(probs) != len(costs):
        raise ValueError(f"{len(probs)} exits but {len(costs)} costs")
    n = {len(p) for p in probs}
    for name, v in (("labels", labels), ("base_right", base_right)):
        if v is not None:
            n.add(len(v))
            if len(n) > 1:
                raise ValueError(f"{name} has {len(v)} samples but the exits' outputs have {len(probs[0])}")
    if len(n) > 1:
        raise ValueError(f"the exits' outputs have different numbers of samples: {sorted(n)}")


def _shuffled(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def calibrate(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
              max_drop: float = 0.01, delta: float = 0.05, method: str = "wsr", rhos: np.ndarray | None = None,
              seed: int = 0, confidences: list[np.ndarray] | None = None) -> Calibration:
    """The cheapest rho whose accuracy drop against the baseline (per-sample correctness `base_right`) is
    certified to stay within `max_drop` with probability >= 1 - delta (see the module docstring).
    probs: K arrays (N, classes) in exit order, the final exit last; costs: K cumulative MFLOPs; confidences:
    the K-1 early exits' scores in [0, 1] (`signals`; default max softmax, on its 0.01 grid)."""
    check(probs, labels, costs, base_right, max_drop, delta)
    rhos = _grid(rhos, confidences)
    order = _shuffled(len(labels), seed)  # betting needs an order independent of the data (splits may be sorted)
    probs, labels, base_right = [p[order] for p in probs], labels[order], np.asarray(base_right)[order]
    confidences = None if confidences is None else [c[order] for c in confidences]
    taken = sweep.exits_taken(probs, rhos, confidences)  # (R, N)
    preds = np.stack([p.argmax(axis=1) for p in probs])[taken, np.arange(len(labels))]
    loss = base_right[None, :].astype(np.float64) - (preds == labels[None, :])
    p = p_values(loss, max_drop, delta, method)
    mflops = np.asarray(costs, dtype=np.float64)[taken].mean(axis=1)
    rho, certified = fixed_sequence(p, rhos, mflops, delta)
    tested = np.argsort(-rhos, kind="stable")[: len(certified) + 1]
    return Calibration(rho, tuple(certified), {float(rhos[k]): float(p[k]) for k in tested}, max_drop, delta, method,
                       samples=f"{len(labels)} samples")


def _grid(rhos: np.ndarray | None, confidences: list[np.ndarray] | None) -> np.ndarray:
    """The thresholds tested: `rhos`, else max softmax's 0.01 grid, or, for another signal's scores, that grid
    with thresholds evenly spaced in logit space (`sweep.CONFIDENCE_RHOS`). Fixed before any data is seen."""
    if rhos is not None:
        return np.asarray(rhos, dtype=np.float64)
    return sweep.RHOS if confidences is None else sweep.CONFIDENCE_RHOS


def zero_loss_budget(n: int, delta: float = 0.05, method: str = "wsr", tol: float = 1e-4) -> float:
    """The smallest budget (fraction) that n calibration samples certify when the paired loss is zero on every
    one (the early-exit runtime right exactly where the baseline is). It is not the smallest budget n samples can
    ever certify: samples where the early exit is right and the baseline wrong (a loss of -1) certify smaller
    ones. It depends on n alone, not on the data, so a budget chosen by it keeps the guarantee."""
    zero = np.zeros((1, n))
    lo, hi = 0.0, 0.5
    if p_values(zero, hi, delta, method)[0] > delta:
        return float("inf")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if p_values(zero, mid, delta, method)[0] <= delta else (mid, hi)
    return hi


def _loss_mix(disagreement: float, drop: float) -> list[float]:
    if not 0 <= disagreement <= 1 or abs(drop) > disagreement:
        raise ValueError(f"disagreement must be in [0, 1] and at least |drop|, got {disagreement:g}, {drop:g}")
    return [(disagreement - drop) / 2, 1 - disagreement, (disagreement + drop) / 2]  # losses -1, 0, +1


def likely_certified(disagreement: float, max_drop: float, n: int, delta: float = 0.05, drop: float = 0.0,
                     method: str = "wsr", draws: int = 50, seed: int = 0) -> bool:
    """Whether n labelled samples certify `max_drop` at `delta` at least half the time (the median p-value of
    seeded simulated calibration sets is <= delta) for an exit whose paired loss is +1 or -1 on a
    `disagreement` fraction of the samples, with mean `drop` (see `samples_needed`)."""
    mix = _loss_mix(disagreement, drop)
    if drop >= max_drop:
        return False
    loss = np.random.default_rng(seed).choice([-1.0, 0.0, 1.0], size=(draws, n), p=mix)
    return float(np.median(p_values(loss, max_drop, delta, method))) <= delta


def samples_needed(disagreement: float, max_drop: float, delta: float = 0.05, drop: float = 0.0,
                   method: str = "wsr", draws: int = 50, seed: int = 0) -> int:
    """How many labelled calibration samples certify `max_drop` at `delta` (with probability about 1/2) for an
    exit that, on a pilot, disagrees with the baseline on a `disagreement` fraction of the samples (paired loss
    +1 or -1) with a mean drop `drop`: the smallest n whose median p-value over seeded simulated calibration
    sets is <= delta (to 1%; -1: not within 4 million). For planning how much data to label; the
    zero-disagreement case is `zero_loss_budget`."""
    _loss_mix(disagreement, drop)
    check([np.zeros(1)], None, [0.0], None, max_drop, delta)
    if drop >= max_drop:
        raise ValueError(f"a mean drop of {drop:g} never certifies a budget of {max_drop:g}")

    def certifies(n: int) -> bool:
        return likely_certified(disagreement, max_drop, n, delta, drop, method, draws, seed + n)

    lo, hi = 1, 64
    while not certifies(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 22:
            return -1
    while hi - lo > max(1, lo // 100):  # to 1%
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if certifies(mid) else (mid, hi)
    return hi


def vector_path(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
                max_drop: float) -> list[tuple[float, ...]]:
    """An order of threshold vectors for fixed-sequence testing, chosen on (probs, labels) alone, from the most
    conservative to ever cheaper in small steps: for each shared rho from 1.0 down, the coordinate search's
    cheapest vector (`sweep.coordinate_search`) at least as accurate as that shared rho here, repeats dropped.
    It follows the shared rho's path (which fixed-sequence testing walks well) but cheaper at each step; it
    stops once the accuracy is 3 x `max_drop` below the baseline's here (no later step could pass)."""
    shared = sweep.sweep(probs, labels, costs)
    floor = float(np.mean(base_right)) - 3 * max_drop
    path: list[tuple[float, ...]] = []
    for i in np.argsort(-shared["rho"], kind="stable"):
        if shared["accuracy"][i] < floor:
            break
        v = sweep.coordinate_search(probs, labels, costs, float(shared["accuracy"][i]))
        if v is not None and tuple(map(float, v)) not in path:
            path.append(tuple(map(float, v)))
    return path or [tuple([1.0] * (len(probs) - 1))]


def calibrate_per_exit(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
                       max_drop: float = 0.01, delta: float = 0.05, method: str = "wsr", path_fraction: float = 0.5,
                       seed: int = 0, path_from: tuple | None = None) -> Calibration:
    """A threshold per early exit with the guarantee of `calibrate`: an order of threshold vectors
    (`vector_path`) is chosen on other data, then tested in that order on these samples (Learn-then-Test, fixed
    sequence), so the order is fixed before the testing data is seen. The other data is `path_from` (probs,
    labels, base_right: e.g. the validation split, and every sample here tests), else a seeded random
    `path_fraction` of these samples (the rest test). The cheapest vector rejected is returned (`rhos`; None
    when the first is not rejected)."""
    if len(probs) < 2:
        raise ValueError("calibrate_per_exit needs a model with at least one early exit")
    check(probs, labels, costs, base_right, max_drop, delta)
    base_right = np.asarray(base_right)
    if path_from is None:
        order = _shuffled(len(labels), seed)
        cut = round(path_fraction * len(labels))
        a, b = order[:cut], order[cut:]
        path = vector_path([p[a] for p in probs], labels[a], costs, base_right[a], max_drop)
        chose = f"{len(a)} samples chose the path, {len(b)} others tested it (seed {seed})"
    else:
        path = vector_path(path_from[0], path_from[1], costs, np.asarray(path_from[2]), max_drop)
        b = _shuffled(len(labels), seed)
        chose = f"{len(path_from[1])} other samples chose the path, {len(b)} tested it"
    pb, yb, rb = [p[b] for p in probs], labels[b], base_right[b]
    taken = sweep.vector_exits(pb, np.array(path))  # (V, Nb)
    preds = np.stack([p.argmax(axis=1) for p in pb])[taken, np.arange(len(yb))]
    loss = rb[None, :].astype(np.float64) - (preds == yb[None, :])
    p = p_values(loss, max_drop, delta, method)
    mflops = np.asarray(costs, dtype=np.float64)[taken].mean(axis=1)
    best, rejected = _walk(p, range(len(path)), mflops, delta, -np.arange(len(path), dtype=float))
    tested = list(range(min(len(path), len(rejected) + 1)))
    return Calibration(None, tuple(path[k] for k in rejected), {str(list(path[k])): float(p[k]) for k in tested},
                       max_drop, delta, f"{method}, fixed sequence along a path of {len(path)} threshold vectors",
                       rhos=None if best is None else path[best],
                       samples=chose)


def calibrate_label_free(probs: list[np.ndarray], costs: list[float], max_disagreement: float = 0.01,
                         delta: float = 0.05, rhos: np.ndarray | None = None,
                         confidences: list[np.ndarray] | None = None) -> Calibration:
    """The cheapest rho whose disagreement with the model's own final exit is certified to stay within
    `max_disagreement` with probability >= 1 - delta: no labels needed (exact binomial p-values)."""
    check(probs, None, costs, None, max_disagreement, delta, "max_disagreement")
    rhos = _grid(rhos, confidences)
    taken = sweep.exits_taken(probs, rhos, confidences)
    n = len(probs[0])
    preds = np.stack([p.argmax(axis=1) for p in probs])
    disagree = (preds[taken, np.arange(n)] != preds[-1][None, :]).sum(axis=1)
    p = stats.binom.cdf(disagree, n, max_disagreement)  # H0: the disagreement rate is >= max_disagreement
    mflops = np.asarray(costs, dtype=np.float64)[taken].mean(axis=1)
    rho, certified = fixed_sequence(p, rhos, mflops, delta)
    tested = np.argsort(-rhos, kind="stable")[: len(certified) + 1]
    return Calibration(rho, tuple(certified), {float(rhos[k]): float(p[k]) for k in tested}, max_disagreement,
                       delta, LABEL_FREE, samples=f"{n} unlabelled samples")


def naive_rho(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], base_right: np.ndarray,
              max_drop: float = 0.01, rhos: np.ndarray | None = None,
              confidences: list[np.ndarray] | None = None) -> float | None:
    """The rule of `sweep.tradeoffs` on one calibration set: the cheapest rho (then the highest) whose
    accuracy is within `max_drop` of the baseline's on it; None when none is."""
    curve = sweep.sweep(probs, labels, costs, _grid(rhos, confidences), confidences)
    ok = np.flatnonzero(curve["accuracy"] >= np.mean(base_right) - max_drop - 1e-12)
    if not len(ok):
        return None
    return float(curve["rho"][ok[np.lexsort((-curve["rho"][ok], curve["mflops"][ok]))[0]]])
