"""The choice of the best design of ours beside the paper's `trecx`, on validation only (the commands
`promote` and `exit_study --publish-best` make it).

The candidate with the highest FLOPs cut at <= 1 point below the baseline on the validation split wins (or,
given each model's cost per exit on a device, the highest instruction cut there: `device_cut`);
if that is `trecx` itself nothing is shipped (and a stale file of the shipped name is left alone, with a
warning), else its files are copied to pretrained/<task>/<name>.*, the config saying what it is and why.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from .. import files
from ..errors import ConfigError
from ..evaluation import sweep, thresholds
from ..evaluation.summary import FILE, load
from .resplit import pooled

log = logging.getLogger("trecx.promote")
PAPER = "trecx"  # the paper's configuration: what a design of ours must beat


def device_cut(results: Path, variant: str, baseline: str, costs: list[float], base_cost: float,
               drop_points: float = 1, vector: bool = False) -> float | None:
    """The validation cut (%) in a device's cost (`costs` per exit and the baseline's `base_cost`, e.g. millions
    of instructions) at the cheapest threshold in that cost within `drop_points` of the baseline on validation
    (`vector`: a threshold per early exit, by coordinate search), from test.py's cached validation outputs."""

    data = pooled(results, variant, baseline, parts=("val",))
    if data is None:
        raise ConfigError(f"{results / variant / 'outputs.npz'} (or its baseline's) not found: run the task's test.py")
    spent = _spent(data, costs, np.arange(len(data.labels)), drop_points, vector)
    return None if spent is None else 100 * (1 - spent / base_cost)


def _spent(data, cum: list[float], idx: np.ndarray, drop_points: float, vector: bool) -> float | None:
    """The mean cost per sample of one model on the samples `idx` at the threshold(s) chosen on them: the cheapest
    within `drop_points` of the baseline (`vector`: a threshold per early exit, by coordinate search); None when
    none is within it."""
    probs, labels, right = [p[idx] for p in data.probs], data.labels[idx], data.base_right[idx]
    if vector and len(cum) > 2:
        best = sweep.coordinate_search(probs, labels, cum, right.mean() - drop_points / 100)
        taken = None if best is None else sweep.exits_taken_vector(probs, best)
    else:
        rho = thresholds.choose("validation", probs, labels, cum, right, drop_points / 100).rho
        taken = None if rho is None else sweep.exits_taken(probs, np.array([rho]))[0]
    return None if taken is None else float(np.asarray(cum, dtype=np.float64)[taken].mean())


def _cut(data, costs: tuple[list[float], float], idx: np.ndarray, drop_points: float, vector: bool) -> float:
    """The validation cut (%) of one model on the samples `idx` (a resample), its threshold(s) chosen on them
    (`_spent`; none within the budget: the full network, its own cut)."""
    cum, base = costs
    spent = _spent(data, cum, idx, drop_points, vector)
    return 100 * (1 - (cum[-1] if spent is None else spent) / base)


def margin(results: Path, winner: str, incumbent: str, baseline: str, vector: bool = False,
           device: dict[str, tuple[list[float], float]] | None = None, drop_points: float = 1,
           rounds: int = 400, seed: int = 0) -> list[float]:
    """95% paired bootstrap interval (points) of `winner`'s validation cut minus `incumbent`'s: the validation
    samples resampled together, each model's threshold chosen again on every resample, so the interval holds the
    noise of that choice as well as of the samples."""
    data = {v: pooled(results, v, baseline, parts=("val",)) for v in (winner, incumbent)}
    for v, d in data.items():
        if d is None:
            raise ConfigError(f"{results / v / 'outputs.npz'} (or its baseline's) not found: run the task's test.py")
    costs = {v: (device or {}).get(v) or (d.costs, d.base_mflops) for v, d in data.items()}
    n = len(data[winner].labels)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        diffs.append(_cut(data[winner], costs[winner], idx, drop_points, vector)
                     - _cut(data[incumbent], costs[incumbent], idx, drop_points, vector))
    return [float(v) for v in np.percentile(diffs, [2.5, 97.5])]


def choose(results: Path, variants: list[str], vector: bool = False,
           device: dict[str, tuple[list[float], float]] | None = None,
           baseline: str = "") -> tuple[str, dict[str, float | None]]:
    """The variant with the highest validation FLOPs cut at <= 1 point (`vector`: with a threshold per early
    exit; ties go to the first listed), and every cut; with `device` (variant -> its cost per exit and the
    baseline's, on a device), the highest cut in that cost (`device_cut`, against `baseline`'s outputs)."""
    cuts = {}
    for v in variants:
        s = load(results, v)
        if s is None:
            raise ConfigError(f"{results / v / FILE} not found: run the task's test.py with "
                              f"pretrained/<task>/{v}.keras first")
        cuts[v] = s.val_cut(1, vector=vector) if device is None else device_cut(results, v, baseline, *device[v],
                                                                                 vector=vector)
    best = max(variants, key=lambda v: -float("inf") if cuts[v] is None else cuts[v])
    return best, cuts


def ship(models: Path, variant: str, name: str, paper: str = PAPER, vector: bool = False, cost: str = "flops",
         cuts: dict[str, float | None] | None = None, why: str = "") -> bool:
    """Copy the files of `variant` to <name>.*, its config saying what it is and why it was chosen;
    nothing when the paper's configuration (`paper`) won."""
    if variant == paper:
        log.info("the paper's configuration measured best on validation: nothing shipped as %s", name)
        if (models / f"{name}.keras").exists():
            log.warning("%s is from an earlier choice and no longer beats %s: delete it", models / f"{name}.keras",
                        PAPER)
        return False
    for suffix in (".keras", ".log.csv", ".versions.json"):
        if (models / f"{variant}{suffix}").exists():
            with files.atomic(models / f"{name}{suffix}") as tmp:
                shutil.copy(models / f"{variant}{suffix}", tmp)
    cfg = json.loads((models / f"{variant}.config.json").read_text())
    files.write_json(models / f"{name}.config.json", cfg | {
        "shipped_as": name, "shipped_from": variant,
        "chosen_by": why or (f"highest {'FLOPs' if cost == 'flops' else cost + ' instruction'} cut at <= 1 point "
                             "below the baseline on the validation split, beyond its noise"
                             + (" (a threshold per early exit)" if vector else "")),
        "validation_cut_pct": cuts or {}})
    log.info("shipped %s as %s", variant, models / f"{name}.keras")
    return True
