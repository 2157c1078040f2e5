"""The threshold rules, in one place and one vocabulary. Every command that picks thresholds (deploy, the API's
`calibrate_exit`, test's certified trade-offs) calls `choose` with a rule name:

- "validation": the cheapest threshold within the budget on the data given (the validation split); no guarantee.
- "certified": one rho shared by every exit, certified by Learn-then-Test (`calibrate.calibrate`).
- "certified_per_exit": a threshold per early exit; the candidates' order comes from other data (`path`: the
  validation split), the calibration data tests them (`calibrate.calibrate_per_exit`).
- "label_free": one rho whose disagreement with the model's own final exit is certified (no labels).

A certified rule reads only the calibration split (`data.splits`); `words` says what its certificate bounds.
"""

from __future__ import annotations

import numpy as np

from . import calibrate

RULES = ("validation", "certified", "certified_per_exit", "label_free")
CERTIFIED = ("certified", "certified_per_exit", "label_free")  # the rules that come with a certificate


def check_rule(rule: str, what: str = "--rule") -> str:
    if rule not in RULES:
        raise ValueError(f"{what} must be one of {', '.join(RULES)}, got '{rule}'")
    return rule


def choose(rule: str, probs: list[np.ndarray], labels: np.ndarray | None, costs: list[float],
           base_right: np.ndarray | None, budget: float, delta: float = 0.05, method: str = "wsr",
           path: tuple | None = None, seed: int = 0, confidences: list[np.ndarray] | None = None
           ) -> calibrate.Calibration:
    """The thresholds of `rule` (see the module docstring) from `probs` (K exits, the final last), `labels` and
    the baseline's per-sample correctness `base_right` on the data the rule reads, for a `budget` (a fraction);
    `costs`: the cumulative cost per exit on the chosen basis (MFLOPs or a device's instructions). `path`:
    (probs, labels, base_right) of other data that orders the per-exit candidates (default: half of this data).
    `confidences`: the early exits' scores under another exit signal (`signals.Signal.scores`; default max
    softmax); the per-exit rule takes max softmax only."""
    check_rule(rule)
    if confidences is not None and rule == "certified_per_exit":
        raise ValueError("the certified_per_exit rule thresholds max softmax only: use the certified rule for "
                         "another exit signal")
    if rule == "validation":
        rho = calibrate.naive_rho(probs, labels, costs, base_right, budget, confidences=confidences)
        return calibrate.Calibration(rho, (), {}, budget, float("nan"), "none: chosen on the data it is tested on",
                                     samples=f"{len(labels)} samples")
    if rule == "certified":
        return calibrate.calibrate(probs, labels, costs, base_right, budget, delta, method, seed=seed,
                                   confidences=confidences)
    if rule == "certified_per_exit":
        return calibrate.calibrate_per_exit(probs, labels, costs, base_right, budget, delta, method, seed=seed,
                                            path_from=path)
    return calibrate.calibrate_label_free(probs, costs, budget, delta, confidences=confidences)


def words(rule: str, budget_points: float, delta: float, data: str, outputs: str, against: str) -> str:
    """What a rule's thresholds promise, in one sentence that claims no more than was computed."""
    if rule not in CERTIFIED:
        return (f"none: the cheapest threshold within {budget_points:g} point(s) on {data}; on unseen data it lands "
                "over the budget about half the time (docs/calibration.md)")
    what = "disagreement with the model's own final exit" if rule == "label_free" else f"drop against {against}"
    return (f"with probability >= {1 - delta:g} over the draw of {data}, the expected {what} on that data's "
            f"distribution is within {budget_points:g} point(s) ({outputs})")


def paired_interval(loss: np.ndarray, rounds: int = 2000, seed: int = 0, level: float = 0.95) -> list[float]:
    """A `level` bootstrap interval of the mean of per-sample paired differences `loss` (the samples resampled,
    seeded): e.g. a drop in points' fractions, or one design's cost minus another's."""
    loss = np.asarray(loss, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(loss), (rounds, len(loss)))
    tail = 100 * (1 - level) / 2
    return [float(v) for v in np.percentile(loss[idx].mean(axis=1), [tail, 100 - tail])]
