"""How far a target's gap could move on other test images: a paired bootstrap over the test split.

The shipped models are re-measured on images this project never had. Resampling the local test images
with replacement (the same draw for every model, so paired differences keep their correlation) and
recomputing a measure from the cached exit outputs (`<model>/outputs.npz`, written by test.py) gives a
95% interval of what another test set of that size would read. rho stays the one chosen on validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluation import sweep
from ..evaluation.evaluate import gain
from ..evaluation.summary import Summary, load

ROUNDS = 1000  # bootstrap draws: the 2.5/97.5 percentiles settle to about 0.05 points


def _per_sample(probs: list[np.ndarray], labels: np.ndarray, summary: Summary) -> dict:
    # table1's trade-off columns: `<column>_<k>pt` (rho chosen on validation), `guaranteed_<column>_<k>pt`,
    # `vector_<column>_<k>pt` (a threshold per early exit)
    tradeoffs = {(prefix, int(t.drop_points)): t for prefix, rows in (("", summary.tradeoffs),
                                                                      ("guaranteed_", summary.guaranteed))
                 for t in rows}
    costs = [summary.mflops(n) for n in summary.exits]
    rhos = np.union1d(sweep.RHOS, [t.rho for t in tradeoffs.values() if t.reached])
    taken = sweep.exits_taken(probs, rhos)  # (R, N)
    right = np.stack([p.argmax(axis=1) == labels for p in probs])  # (K, N)
    exit_right = {f"{n}_test_accuracy": right[k] for k, n in enumerate(summary.exits)}  # as table1's columns
    vectors = {}  # `vector_<column>_<k>pt`: per image, right and cost at the threshold vector chosen on validation
    for t in summary.vector:
        if t.reached:
            at = sweep.exits_taken_vector(probs, np.array(t.rhos))
            vectors[int(t.drop_points)] = (right[at, np.arange(len(labels))], np.asarray(costs, dtype=np.float64)[at])
    return {"rhos": rhos, "labels": labels, "right": right[taken, np.arange(len(labels))],
            "cost": np.asarray(costs, dtype=np.float64)[taken], "exit_right": exit_right, "tradeoffs": tradeoffs,
            "vectors": vectors, "base_mflops": summary.baseline.mflops if summary.baseline else None}


class Resampler:
    """Recomputes `reporting.targets` references on resampled test images of one task's results."""

    def __init__(self, results: Path):
        self.results, self.models = results, {}

    def _model(self, name: str) -> dict | None:
        """Per test image and rho: whether the answer is right and what it cost, computed once over the
        sweep's rhos and the validation-chosen ones. None without outputs.npz, or for a model whose exits
        are thresholded on learnt confidences rather than max softmax (EENets, PTEENet)."""
        if name not in self.models:
            npz, s = self.results / name / "outputs.npz", load(self.results, name)
            self.models[name] = None
            if npz.exists() and s is not None:
                with np.load(npz) as z:
                    keys = {k.split("/", 1)[1] for k in z.files if k.startswith("test/")}
                    if keys == {*s.exits, "labels"}:
                        self.models[name] = _per_sample([z[f"test/{n}"] for n in s.exits], z["test/labels"], s)
        return self.models[name]

    @staticmethod
    def _curve(m: dict, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MFLOPs, accuracy) of the benefit curve on the test images `idx`."""
        return m["cost"][:, idx].mean(axis=1), m["right"][:, idx].mean(axis=1)

    @staticmethod
    def _column(m: dict, column: str, idx: np.ndarray) -> float | None:
        if column in m["exit_right"]:
            return float(m["exit_right"][column][idx].mean())
        for (prefix, d), t in m["tradeoffs"].items():
            names = (f"{prefix}test_accuracy_{d}pt", f"{prefix}test_flops_reduction_pct_{d}pt")
            if not t.reached or column not in names:
                continue
            i = int(np.flatnonzero(m["rhos"] == t.rho)[0])
            if "test_accuracy" in column:
                return float(m["right"][i, idx].mean())
            return 100 * (1 - float(m["cost"][i, idx].mean()) / m["base_mflops"])
        for d, (right, cost) in m["vectors"].items():
            if column == f"vector_test_accuracy_{d}pt":
                return float(right[idx].mean())
            if column == f"vector_test_flops_reduction_pct_{d}pt":
                return 100 * (1 - float(cost[idx].mean()) / m["base_mflops"])
        return None

    def value(self, ref: tuple, idx: np.ndarray) -> float | None:
        """A parsed reference (see `reporting.targets.parse_ref`) on the test images `idx`."""
        kind = ref[0]
        if kind == "number":
            return ref[1]
        if kind == "gain":
            a, b = (self._model(n) for n in ref[1:])
            if a is None or b is None:
                return None
            return gain(*self._curve(a, idx), *self._curve(b, idx))["mean_gain_points"]
        models, column = ref[1], ref[2]
        values = [self._column(m, column, idx) for m in map(self._model, models) if m is not None]
        if len(values) < len(models) or any(v is None for v in values):
            return None
        return max(values)

    def interval(self, measure: tuple, at_least: tuple, rounds: int = ROUNDS, seed: int = 0,
                 margin: float = 0.0) -> tuple | None:
        """95% bootstrap interval of `measure - (at_least + margin)` over the test images, or None when a model
        it needs has no cached outputs."""
        names = [n for ref in (measure, at_least) if ref[0] != "number"
                 for n in (ref[1:] if ref[0] == "gain" else ref[1])]
        if not names or any(self._model(n) is None for n in names):
            return None
        labels = self._model(names[0])["labels"]
        if any(not np.array_equal(self._model(m)["labels"], labels) for m in names):
            return None  # tested on different splits: nothing to pair
        n = len(labels)
        rng = np.random.default_rng(seed)
        gaps = []
        for _ in range(rounds):
            idx = rng.integers(0, n, n)
            got, need = self.value(measure, idx), self.value(at_least, idx)
            if got is None or need is None:
                return None
            gaps.append(got - need - margin)
        low, high = np.percentile(gaps, [2.5, 97.5])
        return float(low), float(high)
