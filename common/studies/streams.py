"""Monitored streams over a deployment's field outcomes (`studies.field`): the monitor (`evaluation.monitor.Watch`,
the runtime's own) run sample by sample over streams drawn from the outcomes, with no inference (each sample's
outcome is cached), as the runtime would see them.

- In distribution: streams of clean test samples drawn with replacement; any alarm is a false alarm.
- Shifted: clean samples up to `switch`, then samples of one shifted condition; the delay to the alarm, and the
  drop against the baseline over the shifted part with the monitor (after the alarm the full network answers) and
  without it, and what the audits and the fallback cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..evaluation.monitor import Monitor, Watch
from .field import Deployed, Outcomes
from .resplit import clopper_pearson


@dataclass
class Run:
    """One monitored stream's outcome."""

    alarm: int  # the sample the alarm came at (-1: none)
    predicted: np.ndarray  # the class the runtime answered per sample
    cost: np.ndarray  # MFLOPs per sample (an audit runs the whole network; after the alarm, every sample does)
    audits: int
    audited_early: int
    history: list  # (sample, statistic) after each audit


def run(o: Outcomes, order: np.ndarray, d: Deployed, spec: Monitor, keep: bool = False) -> Run:
    """The monitor over the samples `order` of `o`: the runtime's answers and costs, sample by sample."""
    watch = Watch(spec, keep)
    k = len(d.rhos)
    early = o.exit[order] < k
    disagree = early & (o.predicted[order] != o.final[order])
    costs = np.asarray(d.costs)
    predicted, cost = o.predicted[order].copy(), costs[o.exit[order]].copy()
    for t in range(len(order)):
        if watch.draw():
            cost[t] = costs[-1]
            if watch.observe(bool(early[t]), bool(disagree[t])):
                predicted[t + 1:] = o.final[order[t + 1:]]  # the fallback: the full network
                cost[t + 1:] = costs[-1]
                break
    s = watch.state
    return Run(s.alarm_at, predicted, cost, s.audits, s.audited_early, s.history)


def switching(rng, clean: int, moved: int, switch: int, after: int) -> np.ndarray:
    """A shifting stream's sample indices into `Outcomes.then`: `switch` of the `clean` ones, then `after` of the
    `moved` ones, drawn with replacement."""
    return np.concatenate([rng.integers(0, clean, switch), clean + rng.integers(0, moved, after)])


def in_distribution(o: Outcomes, d: Deployed, spec: Monitor, streams: int, length: int, seed: int = 0) -> dict:
    """False alarms over `streams` in-distribution streams of `length` samples (each its own draw of samples and
    its own audit seed), and what the audits cost."""
    rng = np.random.default_rng(seed)
    alarms, audit_share, early_share, cost = 0, [], [], []
    for s in range(streams):
        r = run(o, rng.integers(0, len(o.labels), length), d, replace(spec, seed=spec.seed + s))
        alarms += r.alarm >= 0
        audit_share.append(r.audits / length)
        early_share.append(r.audited_early / length)
        cost.append(r.cost.mean())
    return {"streams": streams, "stream_length": length, "false_alarms": alarms,
            "false_alarm_rate": alarms / streams, "false_alarm_rate_ci95": list(clopper_pearson(alarms, streams)),
            "audited_share": float(np.mean(audit_share)), "audited_early_share": float(np.mean(early_share)),
            "mflops_per_sample": float(np.mean(cost))}


def shifted(clean: Outcomes, moved: Outcomes, d: Deployed, spec: Monitor, streams: int, switch: int, after: int,
            seed: int = 0) -> dict:
    """`streams` streams of `switch` clean samples then `after` samples of the shifted condition `moved`: false
    alarms before the switch, the delay after it, and the drop against the baseline over the shifted part with
    and without the monitor."""
    rng = np.random.default_rng(seed)
    both = clean.then(moved)
    n = len(clean.labels)
    delays, early_alarms, drop_on, drop_off, cost_on, cost_off = [], 0, [], [], [], []
    for s in range(streams):
        order = switching(rng, n, len(moved.labels), switch, after)
        r = run(both, order, d, replace(spec, seed=spec.seed + s))
        if 0 <= r.alarm < switch:
            early_alarms += 1
        delays.append(r.alarm - switch if r.alarm >= switch else np.inf)
        part = order[switch:]
        base = (both.baseline[part] == both.labels[part]).mean()
        drop_on.append(100 * (base - (r.predicted[switch:] == both.labels[part]).mean()))
        drop_off.append(100 * (base - (both.predicted[part] == both.labels[part]).mean()))
        cost_on.append(r.cost[switch:].mean())
        cost_off.append(np.asarray(d.costs)[both.exit[part]].mean())
    delays = np.asarray(delays, dtype=float)
    found = np.isfinite(delays)
    return {"streams": streams, "switch_at": switch, "shifted_length": after, "alarms_before_switch": early_alarms,
            "detected_share": float(found.mean()),
            "delay_median": float(np.median(delays)) if found.mean() >= 0.5 else None,
            "delay_p90": float(np.percentile(delays, 90)) if found.mean() >= 0.9 else None,
            "drop_points_unmonitored": float(np.mean(drop_off)), "drop_points_monitored": float(np.mean(drop_on)),
            "mflops_per_sample_unmonitored": float(np.mean(cost_off)),
            "mflops_per_sample_monitored": float(np.mean(cost_on))}
