"""A label-free field monitor of a certified early exit: it audits a seeded random fraction of the samples (an
audited sample that left early also runs the rest of the network) and bets, audit by audit, against "the early
exit disagrees with the final exit no more often than the certified level"; it raises an alarm, once, when the
evidence reaches 1 / alpha, and the runtime then falls back (docs/field.md).

Per audit t, D_t = 1 when the sample left early with another class than the final exit's, else 0 (an audited
sample that ran to the final exit agrees with it). The audits are a seeded random subsample of the stream, so on
the distribution the certificate was computed on E[D_t | past] <= level. For each bet lam_j (a fraction c_j of
1 / level), the process started at audit s multiplies f_j(D) = 1 + lam_j (D - level) per audit: a nonnegative
supermartingale from 1. The statistic mixes every start s (weight w_s = 1 / (s (s + 1)), summing to 1) and every
bet (weight 1 / J); the starts not yet made stay at 1:

    A_j(t) = (A_j(t-1) + w_t) f_j(D_t),   M_t = (sum_j A_j(t)) / J + 1 / (t + 1).

M is itself a nonnegative supermartingale from 1, so by Ville's inequality P(M_t >= 1 / alpha at any t) <= alpha:
the false alarm is bounded over the device's whole life, not per window. A start near the shift keeps its
evidence from the samples before it (the CUSUM idea), at the price of log(1 / w_s) nats.

Host and board compute it alike: the factors are precomputed doubles, and each audit does the same IEEE-754
double additions, multiplications and divisions in the same order in numpy-free Python as in the C++ runner
(trecx_runner.cc, `Monitor`); the audit draws are xorshift32 on uint32, the same bits on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import calibrate

BETS = (0.05, 0.1, 0.2, 0.4, 0.8)  # c_j: each bet a fraction of 1 / level (all keep f_j(0) > 0)
LEVELS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3)  # certifiable
MAX_BETS = 8  # trecx::kMaxBets


@dataclass(frozen=True)
class Monitor:
    """A monitor's settings. `level`: the certified disagreement rate it watches (`certified_level`), None until
    given (the runtime takes a label-free Calibration's own budget)."""

    level: float | None = None  # E[D] the certificate allows: the disagreement with the final exit, a fraction
    alpha: float = 0.05  # the probability of any false alarm over the device's life, in distribution
    audit: float = 1 / 16  # the fraction of samples audited (drawn whatever exit they take)
    seed: int = 1  # the audit draws' xorshift32 seed (nonzero)
    bets: tuple[float, ...] = BETS  # the bets, as fractions of 1 / level
    fallback: tuple[float, ...] | None = None  # thresholds after an alarm (stricter); None: the full network

    def checked(self, level: float | None = None) -> Monitor:
        """These settings with `level` filled in where none was given, or a one-line ValueError."""
        m = self if self.level is not None or level is None else replace(self, level=level)
        if m.level is None:
            raise ValueError("a monitor needs a certified level: give Monitor(level=...) from "
                             "monitor.certified_level, or a label-free Calibration (whose budget is the level)")
        if not 0 < m.level < 1:
            raise ValueError(f"the monitor's level must lie in (0, 1), got {m.level}")
        if not 0 < m.alpha < 1:
            raise ValueError(f"the monitor's alpha must lie in (0, 1), got {m.alpha}")
        if not 0 < m.audit <= 1:
            raise ValueError(f"the audit fraction must lie in (0, 1], got {m.audit}")
        if not 0 < m.seed < 2 ** 32:
            raise ValueError(f"the audit seed must be a nonzero uint32, got {m.seed}")
        if not m.bets or len(m.bets) > MAX_BETS or not all(0 < c < 1 for c in m.bets):
            raise ValueError(f"the bets must be 1 to {MAX_BETS} fractions in (0, 1), got {m.bets}")
        return m

    @property
    def factors(self) -> list[tuple[float, float]]:
        """Per bet (f_j(1), f_j(0)): what an audit's wealth is multiplied by on a disagreement, on an agreement."""
        return [(1.0 + (c / self.level) * (1.0 - self.level), 1.0 - c) for c in self.bets]

    @property
    def audit_cut(self) -> int:
        """A sample is audited when its xorshift32 draw is below this (2**32: every sample)."""
        return min(int(self.audit * 2 ** 32), 2 ** 32)

    def describe(self) -> dict:
        return {"level": self.level, "alpha": self.alpha, "audit": self.audit, "seed": self.seed,
                "bets": list(self.bets), "fallback": None if self.fallback is None else list(self.fallback)}


@dataclass
class State:
    """A monitor's running state: what the user's firmware reads as counters."""

    rng: int
    wealth: list[float]
    samples: int = 0  # samples seen
    audits: int = 0  # samples audited
    audited_early: int = 0  # audited samples that had left early (each ran the rest of the network)
    disagreements: int = 0  # audits whose early class was not the final exit's
    statistic: float = 1.0  # M_t
    alarm_at: int = -1  # the sample (0-based) the alarm came at; -1: none
    history: list = field(default_factory=list)  # (sample, M_t) after each audit, when kept

    @property
    def alarm(self) -> bool:
        return self.alarm_at >= 0


def xorshift32(x: int) -> int:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


class Watch:
    """A monitor running over a stream, one `draw` then (when audited) one `observe` per sample."""

    def __init__(self, spec: Monitor, keep_history: bool = False):
        self.spec = spec.checked()
        self.up_down = self.spec.factors
        self.threshold = 1.0 / self.spec.alpha
        self.cut = self.spec.audit_cut
        self.state = State(self.spec.seed, [0.0] * len(self.spec.bets))
        self.keep = keep_history

    def draw(self) -> bool:
        """Whether the next sample is audited (after an alarm: never). Counts the sample."""
        s = self.state
        s.samples += 1
        if s.alarm:
            return False
        s.rng = xorshift32(s.rng)
        return s.rng < self.cut

    def observe(self, early: bool, disagree: bool) -> bool:
        """An audited sample's outcome: whether it left early and its class differed from the final exit's.
        Returns whether the alarm is raised at this sample."""
        s = self.state
        s.audits += 1
        s.audited_early += early
        d = bool(early and disagree)
        s.disagreements += d
        t = float(s.audits)
        w = 1.0 / (t * (t + 1.0))
        total = 0.0
        for j, (up, down) in enumerate(self.up_down):
            s.wealth[j] = (s.wealth[j] + w) * (up if d else down)
            total = total + s.wealth[j]
        s.statistic = total / float(len(self.up_down)) + 1.0 / (t + 1.0)
        if self.keep:
            s.history.append((s.samples - 1, s.statistic))
        if s.statistic >= self.threshold:
            s.alarm_at = s.samples - 1
            return True
        return False


def certified_level(probs: list[np.ndarray], costs: list[float], rho: float, delta: float = 0.05,
                    confidences: list[np.ndarray] | None = None, levels: tuple[float, ...] = LEVELS
                    ) -> float | None:
    """The smallest level of `levels` at which a label-free certificate (`calibrate.calibrate_label_free`, at
    delta / len(levels) each: a union bound over the levels) certifies the deployed shared threshold `rho` on these
    calibration outputs: with probability >= 1 - delta, the disagreement with the final exit at `rho` is within it
    on their distribution, whichever certificate chose `rho`. None: no level certifies it."""
    grid = calibrate._grid(None, confidences)
    if not np.isclose(grid, rho).any():
        raise ValueError(f"rho {rho} is not on the certificate's threshold grid: certify it with deploy")
    for level in sorted(levels):
        cal = calibrate.calibrate_label_free(probs, costs, level, delta / len(levels), confidences=confidences)
        if any(np.isclose(r, rho) for r in cal.certified):
            return float(level)
    return None
