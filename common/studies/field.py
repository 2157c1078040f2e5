"""What the field does to a certified deployment (a benchmark, not a test): its int8 graphs run on TFLM (the
kernels the firmware is checked against) over the task's test samples under each shift of `data.shifts`, and
label-free monitored streams over them (`evaluation.monitor`).

Per deployment and condition, every sample's outputs are computed once and cached (`outcomes`): the exit the
deployed rule takes, each exit's class, the int8 baseline's class and the label. Everything else (the shift table,
the streams) is read off those outcomes, so the streams cost no inference.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import paths, records, tasks
from ..data import shifts
from ..edge import board
from ..edge.deployment import read_graphs, segments_of
from ..edge.runtime import MultiExitRuntime, SingleRuntime
from ..evaluation import signals

log = logging.getLogger("trecx.field")
CLEAN = ("none", 0)  # the condition with no shift


@dataclass
class Outcomes:
    """Every sample's outcome under one condition."""

    exit: np.ndarray  # (N,) the exit the deployed rule takes (k: the final exit)
    classes: np.ndarray  # (N, k + 1) each exit's class
    baseline: np.ndarray  # (N,) the int8 baseline's class
    labels: np.ndarray  # (N,)

    @property
    def predicted(self) -> np.ndarray:
        return self.classes[np.arange(len(self.exit)), self.exit]

    @property
    def final(self) -> np.ndarray:
        return self.classes[:, -1]

    def then(self, other: Outcomes) -> Outcomes:
        """These samples followed by `other`'s (a stream draws clean indices below len(self), shifted above)."""
        return Outcomes(*(np.concatenate([a, b]) for a, b in zip(
            (self.exit, self.classes, self.baseline, self.labels),
            (other.exit, other.classes, other.baseline, other.labels), strict=True)))


@dataclass(frozen=True)
class Deployed:
    """A certified deployment as the field study runs it."""

    name: str  # its folder under results/<task>/deploy/
    segments: list[bytes]
    baseline: bytes
    rhos: list[float]
    budget: float  # points the certificate bounds the drop by
    signal: signals.Signal | None
    certified_as: str  # where its thresholds come from, in words
    digest: str  # the deployment's record digest
    costs: list[float]  # cumulative MFLOPs per exit
    base_mflops: float


def deployed(folder: Path) -> Deployed | None:
    """The deployment in `folder` with the thresholds its certificate gave (its own, or the smallest budget deploy
    certified beside it); None when it certified nothing."""
    dep = records.read(folder)
    t = dep["threshold"]
    if t["certified"] and dep["rhos"]:
        rhos, budget, how = dep["rhos"], t["budget_points"], f"deploy's own certificate at {t['budget_points']} pt"
    elif dep.get("smallest_budget_certified") and t["rule"] == "certified":
        budget = dep["smallest_budget_certified"]
        rhos = dep["certified_by_budget"][str(budget)]["rhos"]
        how = f"deploy.json certified_by_budget['{budget}'] (the smallest budget its calibration split certified)"
    else:
        return None
    graphs = read_graphs(folder, dep["variant"], dep["segments"], kinds=("int8",))
    segments, exits = segments_of(graphs), dep["exits"]
    return Deployed(folder.name, segments, graphs["baseline_int8"],
                    board.thresholds(rhos, len(segments) - 1), float(budget),
                    signals.Signal.from_dict(dep.get("signal")), how, dep.digest,
                    [dep["mflops"][e] for e in exits], dep["mflops"]["baseline"])


def outcomes(d: Deployed, x: np.ndarray, labels: np.ndarray, cache: Path | None, what: str = "") -> Outcomes:
    """The outcomes of `x` (model inputs) on `d`'s int8 graphs and baseline on TFLM, cached under `cache` by the
    graphs, thresholds, signal and inputs."""
    key = hashlib.blake2b(digest_size=10)
    for part in (*d.segments, d.baseline, repr(d.rhos).encode(), repr(signals.other(d.signal) and d.signal.describe())
                 .encode(), np.ascontiguousarray(x).tobytes()):
        key.update(part)
    path = cache / f"{key.hexdigest()}.npz" if cache else None
    if path is not None and path.exists():
        z = np.load(path)
        return Outcomes(z["exit"], z["classes"], z["baseline"], labels)
    rt = MultiExitRuntime(d.segments, d.rhos, backend="tflm", signal=d.signal)
    base = SingleRuntime(d.baseline, backend="tflm")
    ex, cls, bl = [], [], []
    for r in tqdm(x, desc=what or d.name, unit="sample", leave=False):
        raws = rt.raw_exits(r)
        ex.append(rt.exit_of(raws))
        cls.append([int(v.argmax()) for v in raws])
        bl.append(base(r).label)
    out = Outcomes(np.array(ex), np.array(cls), np.array(bl), labels)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, exit=out.exit, classes=out.classes, baseline=out.baseline)
        tmp.replace(path)
    return out


def conditions(fd: tasks.FieldData) -> list[tuple[str, int]]:
    """The clean condition, then every shift of the task at every severity."""
    return [CLEAN, *((k, s) for k in fd.shifts for s in shifts.SEVERITIES)]


def all_outcomes(d: Deployed, fd: tasks.FieldData, task: str, samples: int = 0, seed: int = 0
                 ) -> dict[tuple[str, int], Outcomes]:
    """`d`'s outcomes under every condition, on the first `samples` test samples (0: all)."""
    n = samples or len(fd.labels)
    raw, labels = fd.raw[:n], fd.labels[:n]
    cache = paths.cache_dir() / "field" / task / d.name
    out = {}
    for kind, sev in conditions(fd):
        shifted = raw if kind == "none" else shifts.apply(kind, raw, sev, seed, fd.background)
        out[kind, sev] = outcomes(d, fd.front_end(shifted), labels, cache, f"{d.name} {kind} {sev}")
    return out


def shift_row(o: Outcomes, d: Deployed) -> dict:
    """One condition's line of shift.csv: accuracies, the drop against the baseline under the same shift (95%
    interval), the exit rates, and the disagreement with the final exit."""
    n = len(o.labels)
    right, base_right, final_right = (o.predicted == o.labels), (o.baseline == o.labels), (o.final == o.labels)
    early = o.exit < len(d.rhos)
    disagree = early & (o.predicted != o.final)
    loss = base_right.astype(float) - right
    idx = np.random.default_rng(0).integers(0, n, (2000, n))
    lo, hi = np.percentile(loss[idx].mean(axis=1), [2.5, 97.5])
    return {"samples": n, "accuracy": right.mean(), "baseline_accuracy": base_right.mean(),
            "final_exit_accuracy": final_right.mean(), "drop_points": 100 * loss.mean(),
            "drop_points_ci95_low": 100 * lo, "drop_points_ci95_high": 100 * hi,
            "final_exit_drop_points": 100 * (base_right.mean() - final_right.mean()),
            "over_budget": bool(100 * loss.mean() > d.budget),
            "exit_rate": early.mean(), **{f"exit_rate_{i}": (o.exit == i).mean() for i in range(len(d.rhos) + 1)},
            "disagreement": disagree.mean(),
            "disagreement_among_early": disagree.sum() / max(early.sum(), 1),
            "mflops_per_sample": float(np.mean(np.asarray(d.costs)[o.exit])),
            "flops_cut_pct": 100 * (1 - np.mean(np.asarray(d.costs)[o.exit]) / d.base_mflops)}


def level(d: Deployed, x_cal: np.ndarray, delta: float) -> float | None:
    """The certified disagreement level of `d`'s shared threshold on the calibration split's int8 outputs on TFLM
    (`monitor.certified_level`: label-free, whichever certificate chose the threshold)."""
    return board.monitor_level(d.segments, x_cal, d.rhos, delta, d.signal)
