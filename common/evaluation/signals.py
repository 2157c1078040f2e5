"""Exit signals: the score an early exit's threshold is compared with, each a named rule (pure NumPy).

- "max_softmax": the exit's largest probability (the paper's rule).
- "temperature": the largest probability of the exit's softmax at its own temperature, 1 / sum_j (p_j / p_1)^(1/T).
- "margin": the largest probability minus the second.
- "entropy": 1 - H(p) / log(classes).
- "gate": a tiny logistic classifier per exit on (p_1, p_2, sum_j p_j log p_j): the probability that the exit's
  class is the final exit's (it needs no labels to fit).

Every score lies in [0, 1] and grows with the decision to exit, so one threshold (shared or per exit) goes through
the one threshold module (`thresholds.choose`) as max softmax does. "temperature" and "gate" are fitted (`fit`) on
data that neither trains the network nor certifies its thresholds: the validation split.

On int8 outputs (`scores(..., quant=...)`) every score is computed as a device computes it, in integers: with
v = q - zero (q the exit's int8 score of a class), the integer score is
    s = T1[q_1] + T2[q_2] + sum_j TS[q_j] + sum_j TR[256 * v_j // v_1]
over the exit's tables (`tables`: the largest score q_1, the second q_2, every class, the ratio to the largest),
and the unit score is a monotone map of s (`Signal.unit`). The C++ runner computes the same s from the same tables
(`edge.sources`), so a threshold compares `s >= int_threshold(rho)` alike on host and board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGNALS = ("max_softmax", "temperature", "margin", "entropy", "gate")
FITTED = ("temperature", "gate")  # the signals with parameters, fitted on validation
FIXED = 1 << 16  # fixed point of the integer tables
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))  # the grid a temperature is fitted on
NEVER = 1 << 62  # an integer threshold no score reaches


def check(name: str, what: str = "signal") -> str:
    if name not in SIGNALS:
        raise ValueError(f"{what} must be one of {', '.join(SIGNALS)}, got '{name}'")
    return name


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.sort(p, axis=1)
    return s[:, -1], s[:, -2] if p.shape[1] > 1 else np.zeros(len(p))


def _plogp(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def features(p: np.ndarray) -> np.ndarray:
    """(N, 3): the gate's features of one exit's probabilities: p_1, p_2, sum_j p_j log p_j."""
    p1, p2 = _top2(np.asarray(p, dtype=np.float64))
    return np.stack([p1, p2, _plogp(p).sum(axis=1)], axis=1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -60, 60)))


@dataclass(frozen=True)
class Signal:
    """A named exit signal and its parameters per early exit (temperature: (T,); gate: (a, b, c, d), the weights of
    p_1, p_2, sum p log p and the bias); `fitted_on` says what data fitted them."""

    name: str = "max_softmax"
    params: tuple = ()
    fitted_on: str = ""

    def __post_init__(self):
        check(self.name)

    def describe(self) -> dict:
        return {"name": self.name, "params": [list(map(float, p)) for p in self.params], "fitted_on": self.fitted_on}

    @staticmethod
    def from_dict(d: dict | None) -> Signal:
        d = d or {}
        params = tuple(tuple(p) for p in d.get("params", []))
        return Signal(d.get("name", "max_softmax"), params, d.get("fitted_on", ""))

    def check_exits(self, exits: int) -> None:
        if self.name in FITTED and len(self.params) != exits:
            raise ValueError(f"the {self.name} signal has parameters for {len(self.params)} early exit(s) but the "
                             f"model has {exits}: fit it with signals.fit on that model's validation outputs")

    # -- float outputs

    def score(self, p: np.ndarray, k: int) -> np.ndarray:
        """(N,): early exit k's score in [0, 1] from its probabilities (N, classes)."""
        p = np.asarray(p, dtype=np.float64)
        p1, p2 = _top2(p)
        if self.name == "max_softmax":
            return p1
        if self.name == "margin":
            return p1 - p2
        if self.name == "entropy":
            return 1 + _plogp(p).sum(axis=1) / np.log(p.shape[1])
        if self.name == "temperature":
            ratio = np.divide(p, p1[:, None], out=np.ones_like(p), where=p1[:, None] > 0)
            return 1 / (ratio ** (1 / self.params[k][0])).sum(axis=1)
        a, b, c, d = self.params[k]
        return _sigmoid(features(p) @ np.array([a, b, c]) + d)

    def scores(self, probs: list[np.ndarray], quant: list[tuple[float, int]] | None = None) -> list[np.ndarray]:
        """The K-1 early exits' scores (N,) from every exit's probabilities (the final last). `quant`: each early
        exit's int8 (scale, zero) when the probabilities are dequantized int8 outputs; the scores are then the
        integer scores a device computes, mapped to [0, 1]."""
        self.check_exits(len(probs) - 1)
        if quant is None:
            return [self.score(p, k) for k, p in enumerate(probs[:-1])]
        return [self.unit(self.int_scores(p, k, *quant[k]), k, p.shape[1], quant[k][0])
                for k, p in enumerate(probs[:-1])]

    # -- int8 outputs, as a device computes them

    def tables(self, k: int, classes: int, scale: float, zero: int) -> dict[str, np.ndarray | None]:
        """Exit k's integer tables: T1, T2, TS indexed by q + 128 (256 entries), TR by the ratio index (257); None
        where the signal does not use one."""
        v = np.arange(-128, 128) - zero
        p = np.clip(v, 0, None) * scale
        t = {"T1": None, "T2": None, "TS": None, "TR": None}
        if self.name in ("max_softmax", "margin"):
            t["T1"] = v.astype(np.int64)
            if self.name == "margin":
                t["T2"] = -v.astype(np.int64)
        elif self.name == "entropy":
            t["TS"] = np.round(FIXED * _plogp(p)).astype(np.int64)
        elif self.name == "temperature":
            r = np.arange(257) / 256
            t["TR"] = -np.round(FIXED * r ** (1 / self.params[k][0])).astype(np.int64)
        else:
            a, b, c, _ = self.params[k]
            t["T1"], t["T2"] = (np.round(FIXED * w * p).astype(np.int64) for w in (a, b))
            t["TS"] = np.round(FIXED * c * _plogp(p)).astype(np.int64)
        return t

    def int_scores(self, p: np.ndarray, k: int, scale: float, zero: int) -> np.ndarray:
        """(N,) int64: exit k's integer score s of dequantized int8 probabilities p (recovered to q exactly)."""
        q = np.clip(np.round(np.asarray(p, dtype=np.float64) / scale + zero), -128, 127).astype(np.int64)
        return integer_score(q, self.tables(k, p.shape[1], scale, zero), zero)

    def unit(self, s: np.ndarray, k: int, classes: int, scale: float) -> np.ndarray:
        """The [0, 1] score of integer scores s (monotone non-decreasing in s)."""
        s = np.asarray(s, dtype=np.float64)
        if self.name in ("max_softmax", "margin"):
            return s * scale
        if self.name == "entropy":
            return 1 + s / (FIXED * np.log(classes))
        if self.name == "temperature":
            return FIXED / np.maximum(-s, 1.0)
        return _sigmoid(s / FIXED + self.params[k][3])

    def int_threshold(self, rho: float | None, k: int, classes: int, scale: float) -> int:
        """The smallest integer score whose unit score is >= rho (NEVER for None or infinity), so that
        `s >= int_threshold(rho)` exactly when `unit(s) >= rho`."""
        if rho is None or not np.isfinite(rho):
            return NEVER
        if rho <= 0:
            return -NEVER
        if self.name in ("max_softmax", "margin"):
            guess = rho / scale
        elif self.name == "entropy":
            guess = (rho - 1) * FIXED * np.log(classes)
        elif self.name == "temperature":
            guess = -FIXED / rho
        else:
            guess = FIXED * (np.log(rho / (1 - rho)) - self.params[k][3]) if rho < 1 else FIXED * 61
        return _lowest(lambda s: bool(self.unit(np.array([s]), k, classes, scale)[0] >= rho), int(np.ceil(guess)))


def _lowest(hit, t: int) -> int:
    """The smallest integer where the monotone predicate `hit` holds, searched from the guess t (exponential
    steps, then bisection); NEVER when it holds nowhere within 2^40 above t, -NEVER when everywhere below."""
    step = 1
    if hit(t):
        while hit(t - step):
            if step > 1 << 40:
                return -NEVER
            step *= 2
        lo, hi = t - step, t
    else:
        while not hit(t + step):
            if step > 1 << 40:
                return NEVER
            step *= 2
        lo, hi = t, t + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if hit(mid) else (mid, hi)
    return hi


def named(signal: Signal | str | None) -> Signal | None:
    """A Signal from a name (one with nothing to fit) or a Signal; a one-line ValueError for an unknown name or a
    fitted signal given by name."""
    if not isinstance(signal, str):
        return signal
    if check(signal, "signal") in FITTED:
        raise ValueError(f"the {signal} signal has parameters: fit it on validation data with fit_signal(model, "
                         f"x_val, y_val, '{signal}') (or signals.fit) and pass what it returns")
    return Signal(signal)


def other(signal: Signal | None) -> Signal | None:
    """The signal when it is not max softmax, else None: what the thresholds compare beyond the largest score."""
    return None if signal is None or signal.name == "max_softmax" else signal


def integer_score(q: np.ndarray, t: dict, zero: int) -> np.ndarray:
    """(N,) int64: s = T1[q_1] + T2[q_2] + sum TS[q_j] + sum TR[256 * v_j // v_1] of int8 scores q (N, classes);
    what the C++ runner computes (`trecx_runner.cc`, ExitScore)."""
    q = np.asarray(q, dtype=np.int64)
    srt = np.sort(q, axis=1)
    s = np.zeros(len(q), dtype=np.int64)
    if t["T1"] is not None:
        s += t["T1"][srt[:, -1] + 128]
    if t["T2"] is not None and q.shape[1] > 1:
        s += t["T2"][srt[:, -2] + 128]
    if t["TS"] is not None:
        s += t["TS"][q + 128].sum(axis=1)
    if t["TR"] is not None:
        v, v1 = q - zero, (srt[:, -1] - zero)[:, None]
        idx = np.where(v1 > 0, (256 * np.clip(v, 0, None)) // np.maximum(v1, 1), 256)
        s += t["TR"][np.clip(idx, 0, 256)].sum(axis=1)
    return s


def fit(name: str, probs: list[np.ndarray], labels: np.ndarray | None = None, data: str = "validation") -> Signal:
    """The signal `name` fitted on `probs` (every exit's probabilities, the final last) of `data`, which must
    neither train the network nor certify its thresholds: a temperature per exit by the least negative
    log-likelihood of `labels` on a grid; a gate per exit by logistic regression of "this exit's class is the
    final exit's" (no labels). The others have nothing to fit."""
    check(name)
    if name not in FITTED:
        return Signal(name, (), "")
    if name == "temperature":
        if labels is None:
            raise ValueError("the temperature signal is fitted on labelled data: give the validation labels")
        params = tuple((_temperature(p, labels),) for p in probs[:-1])
    else:
        final = probs[-1].argmax(axis=1)
        params = tuple(tuple(logistic(features(p), (p.argmax(axis=1) == final).astype(np.float64)))
                       for p in probs[:-1])
    return Signal(name, params, f"{data}, {len(probs[0])} samples")


def _temperature(p: np.ndarray, labels: np.ndarray) -> float:
    logp = np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, None))
    nll = []
    for t in TEMPERATURES:
        z = logp / t
        z -= z.max(axis=1, keepdims=True)
        nll.append(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(axis=1))).mean())
    return float(TEMPERATURES[int(np.argmin(nll))])


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> list[float]:
    """Weights then bias of an L2-regularised logistic regression of y (0/1) on x, by Newton's method."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = l2 * len(x) * np.eye(len(w))
    reg[-1, -1] = 0  # the bias is not shrunk
    for _ in range(steps):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) + reg @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def limit(probs: list[np.ndarray], costs: list[float]) -> dict[str, float]:
    """The perfect signal: every sample leaves at the earliest exit whose class is the final exit's, so the
    accuracy stays the final exit's and no rule on this model saves more without changing a prediction. Its
    mean cost and exit rates."""
    preds = np.stack([p.argmax(axis=1) for p in probs])
    first = (preds == preds[-1][None, :]).argmax(axis=0)
    cum = np.asarray(costs, dtype=np.float64)
    return {"mflops": float(cum[first].mean()),
            **{f"exit_rate_{k}": float((first == k).mean()) for k in range(len(probs))}}
