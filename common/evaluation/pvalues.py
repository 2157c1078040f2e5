"""Valid finite-sample p-values of H0 "the mean of a bounded loss is >= a bound", which Learn-then-Test
(`evaluation.calibrate`) tests one threshold at a time: a betting test ("wsr", Waudby-Smith & Ramdas, JRSS-B
2023) and Hoeffding-Bentkus on each tail of a paired loss apart ("hb", Bates et al., JACM 2021, Sec. 3).
Pure NumPy and SciPy."""

from __future__ import annotations

import numpy as np
from scipy import stats

METHODS = ("wsr", "hb")


def hoeffding_bentkus_p(mean: np.ndarray, n: int, target: float) -> np.ndarray:
    """p-values of H0 "the mean of n i.i.d. [0, 1] losses is >= target", given their sample means."""
    mean = np.asarray(mean, dtype=np.float64)
    target = np.clip(np.asarray(target, dtype=np.float64), 1e-12, 1 - 1e-12)
    a = np.clip(np.minimum(mean, target), 1e-12, 1 - 1e-12)
    kl = a * np.log(a / target) + (1 - a) * np.log((1 - a) / (1 - target))  # h1(a, target)
    hoeffding = np.exp(-n * kl)
    bentkus = np.e * stats.binom.cdf(np.ceil(n * mean - 1e-9), n, target)
    return np.minimum(1.0, np.minimum(hoeffding, bentkus))


def _hb_upper(mean: np.ndarray, n: int, alpha: np.ndarray, steps: int = 30) -> np.ndarray:
    """Hoeffding-Bentkus upper confidence bounds at level alpha of the means of n i.i.d. [0, 1] losses: the
    smallest q whose H0 "mean >= q" is rejected (by bisection; the p-value falls as q rises)."""
    lo, hi = np.array(mean, dtype=np.float64), np.ones_like(mean, dtype=np.float64)
    for _ in range(steps):
        mid = (lo + hi) / 2
        rejected = hoeffding_bentkus_p(mean, n, mid) <= alpha
        lo, hi = np.where(rejected, lo, mid), np.where(rejected, mid, hi)
    return hi


def paired_hb_p(loss: np.ndarray, bound: float, steps: int = 30) -> np.ndarray:
    """p-values of H0 "the mean of the paired losses (R, n) in {-1, 0, 1} is >= bound", Hoeffding-Bentkus on each
    tail apart: the mean is P(+1) - P(-1), so H0 is rejected at level alpha when an upper bound of P(+1) minus a
    lower bound of P(-1), each at alpha / 2, is below `bound` (a union bound). The p-value is the smallest such
    alpha (by bisection). One bound on the loss mapped onto [0, 1] would put most of its mass at 0.5, where
    Hoeffding-Bentkus is loosest; the tails are rare events, where it is tight."""
    loss = np.asarray(loss, dtype=np.float64)
    n = loss.shape[-1]
    plus, minus = (loss > 0.5).mean(axis=-1), (loss < -0.5).mean(axis=-1)

    def rejects(alpha: np.ndarray) -> np.ndarray:
        return _hb_upper(plus, n, alpha / 2) - (1 - _hb_upper(1 - minus, n, alpha / 2)) < bound

    lo, hi = np.zeros_like(plus), np.ones_like(plus)
    never = ~rejects(hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        r = rejects(mid)
        lo, hi = np.where(r, lo, mid), np.where(r, mid, hi)
    return np.where(never, 1.0, hi)


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
    """p-value per row of `loss` (R, n) in {-1, 0, 1} of H0 "its mean is >= bound", by `method`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "hb":
        return paired_hb_p(loss, bound)
    return betting_p((loss + 1) / 2, (bound + 1) / 2, delta)  # onto [0, 1]
