"""The one reader of a tested model's `summary.json` (written by `common.evaluation.evaluate`).

Every report reads a model's results through `Summary`, never by walking the JSON by key, so the file's
layout is known in one place (docs/results.md describes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FILE = "summary.json"
SPLITS = ("val", "test")


@dataclass(frozen=True)
class ExitCost:
    """What it costs to leave at one exit."""

    mflops: float  # cumulative: everything a sample runs to leave here, exit heads passed included
    params: int  # parameters on that path
    mflops_alone: float  # this exit's own path, other exit heads left out
    params_alone: int


@dataclass(frozen=True)
class Tradeoff:
    """One allowed accuracy drop: rho chosen on validation, what it gave on test (None: no rho qualifies)."""

    drop_points: float  # allowed drop below the baseline's validation accuracy, points
    rho: float | None
    val_accuracy: float | None
    val_mflops: float | None
    test_accuracy: float | None
    test_mflops: float | None
    test_flops_reduction_pct: float | None  # 100 x (1 - test MFLOPs / the baseline's)
    test_drop_points: float | None  # how far below the baseline's test accuracy it landed
    rhos: tuple[float, ...] | None = None  # one threshold per early exit (`vector` trade-offs; rho is None)

    def __post_init__(self) -> None:
        if self.rhos is not None:
            object.__setattr__(self, "rhos", tuple(self.rhos))

    @property
    def reached(self) -> bool:
        return self.rho is not None or self.rhos is not None


@dataclass(frozen=True)
class Baseline:
    """The model the trade-offs were measured against."""

    val_accuracy: float
    test_accuracy: float
    mflops: float


@dataclass(frozen=True)
class Summary:
    """A tested model: size, cost per exit, standalone accuracy per exit and split, trade-offs."""

    exits: tuple[str, ...]  # classifier outputs in exit order, `final` last
    params: int
    exit_costs: dict[str, ExitCost]
    standalone: dict[str, dict[str, float]]  # exit -> split -> accuracy (fraction)
    tradeoffs: tuple[Tradeoff, ...] = ()  # 1, 2, 3 points (models with one exit: none)
    baseline: Baseline | None = None
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> {"accuracy", "mflops"}
    guaranteed: tuple[Tradeoff, ...] = ()  # rho certified on the calibration split (Learn-then-Test), on test
    guarantee: dict = field(default_factory=dict)  # how: {"method", "delta", "calibrated_on"}
    vector: tuple[Tradeoff, ...] = ()  # a threshold per early exit (k >= 2 early exits), chosen on validation

    def accuracy(self, exit: str = "final", split: str = "test") -> float:
        return self.standalone[exit][split]

    def mflops(self, exit: str = "final") -> float:
        return self.exit_costs[exit].mflops

    @property
    def early(self) -> str | None:
        """The first early exit's name, when the model has one."""
        return self.exits[0] if len(self.exits) > 1 else None

    def tradeoff(self, drop_points: float = 1, guaranteed: bool = False, vector: bool = False) -> Tradeoff | None:
        rows = self.vector if vector else self.guaranteed if guaranteed else self.tradeoffs
        return next((t for t in rows if t.drop_points == drop_points), None)

    def val_cut(self, drop_points: float = 1, vector: bool = False) -> float | None:
        """FLOPs cut (%) on validation at a trade-off, or None when no rho keeps validation within it."""
        t = self.tradeoff(drop_points, vector=vector)
        if t is None or t.val_mflops is None or self.baseline is None:
            return None
        return 100 * (1 - t.val_mflops / self.baseline.mflops)

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        return cls(exits=tuple(d["exits"]), params=int(d["params"]),
                   exit_costs={k: ExitCost(**v) for k, v in d["exit_costs"].items()},
                   standalone={k: dict(v) for k, v in d["standalone"].items()},
                   tradeoffs=tuple(Tradeoff(**t) for t in d.get("tradeoffs", [])),
                   baseline=Baseline(**d["baseline"]) if d.get("baseline") else None,
                   oracle={s: d[f"oracle_{s}"] for s in SPLITS if f"oracle_{s}" in d},
                   guaranteed=tuple(Tradeoff(**t) for t in d.get("guaranteed_tradeoffs", [])),
                   guarantee=dict(d.get("guarantee", {})),
                   vector=tuple(Tradeoff(rho=None, **t) for t in d.get("vector_tradeoffs", [])))

    @classmethod
    def read(cls, path: Path) -> Summary:
        return cls.from_dict(json.loads(Path(path).read_text()))


def exists(results: Path, model: str) -> bool:
    return (results / model / FILE).exists()


def load(results: Path, model: str) -> Summary | None:
    """`results/<model>/summary.json` as a Summary, or None when that model was not tested there."""
    return Summary.read(results / model / FILE) if exists(results, model) else None
