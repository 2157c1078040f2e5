"""The rho sweep over cached exit outputs: benefit curves, trade-offs, oracle bound (pure NumPy).

A sample leaves at the first exit whose confidence is >= rho (the final exit takes the rest); its
cost is the cost of everything it ran, given per exit as cumulative MFLOPs.
"""

from __future__ import annotations

import numpy as np

RHOS = np.round(np.linspace(0.0, 1.0, 101), 2)  # 0 to 1, step 0.01
# Sigmoid confidence heads (EENets, PTEENet) trained with the cost-aware loss sit mostly within 1e-3
# of 0 or 1, where a 0.01 grid sees one or two exit rates; thresholds evenly spaced in logit space
# (from 1e-7 to 1 - 1e-7), added to RHOS, reach the rates their ranking supports.
CONFIDENCE_RHOS = np.unique(np.concatenate([RHOS, 1 / (1 + np.exp(-np.linspace(-16.0, 16.0, 129)))]))


def exits_taken(probs: list[np.ndarray], rhos: np.ndarray, confidences: list[np.ndarray] | None = None) -> np.ndarray:
    """(R, N): the exit each sample leaves at under each rho (the first whose confidence is >= rho;
    the final exit, K-1, takes the rest)."""
    n = len(probs[0])
    conf = np.stack(confidences if confidences is not None else [p.max(axis=1) for p in probs[:-1]]) \
        if len(probs) > 1 else np.zeros((0, n))
    rhos = np.asarray(rhos, dtype=np.float64)
    return first_passing(conf, np.repeat(rhos[:, None], len(conf), axis=1))  # one rho shared by every exit


def first_passing(conf: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(R, N): per row of thresholds (R, K-1), the first exit whose confidence (K-1, N) reaches its threshold
    for each sample; the final exit, K-1, takes the rest."""
    passes = conf[None, :, :] >= thresholds[:, :, None]  # (R, K-1, N)
    return np.concatenate([passes, np.ones((len(thresholds), 1, conf.shape[1]), bool)], axis=1).argmax(axis=1)


def sweep(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], rhos: np.ndarray | None = None,
          confidences: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Benefit curve of a K-exit model, vectorised over rho and samples.

    probs: K arrays (N, classes), in exit order, the last one the final exit.
    costs: K cumulative MFLOPs (the cost of a sample that leaves at exit k).
    confidences: K-1 arrays (N,) to threshold; max softmax of each early exit by default.
    rhos: the thresholds; by default RHOS, or CONFIDENCE_RHOS when `confidences` are given.
    Returns rho (R,), accuracy (R,), mflops (R,), exit_rate (R, K).
    """
    if len(probs) != len(costs):
        raise ValueError(f"{len(probs)} exits but {len(costs)} costs")
    if rhos is None:
        rhos = RHOS if confidences is None else CONFIDENCE_RHOS
    rhos = np.asarray(rhos, dtype=np.float64)
    exit_idx = exits_taken(probs, rhos, confidences)  # (R, N)
    preds = np.stack([p.argmax(axis=1) for p in probs])  # (K, N)
    pred = preds[exit_idx, np.arange(len(labels))]  # (R, N)
    return {
        "rho": rhos,
        "accuracy": (pred == labels[None, :]).mean(axis=1),
        "mflops": np.asarray(costs, dtype=np.float64)[exit_idx].mean(axis=1),
        "exit_rate": np.stack([(exit_idx == i).mean(axis=1) for i in range(len(probs))], axis=1),
    }


def oracle(probs: list[np.ndarray], labels: np.ndarray, costs: list[float]) -> dict[str, float]:
    """Upper bound: every sample leaves at the first exit that is right (at the first exit when none
    is); for two exits, exit early whenever the early exit is right or the final exit is wrong."""
    correct = np.stack([p.argmax(axis=1) == labels for p in probs])  # (K, N)
    first_right = np.where(correct.any(axis=0), correct.argmax(axis=0), 0)
    return {"accuracy": float(correct.any(axis=0).mean()),
            "mflops": float(np.asarray(costs, dtype=np.float64)[first_right].mean())}


def tradeoffs(val: dict[str, np.ndarray], test: dict[str, np.ndarray], base_val_acc: float, base_test_acc: float,
              base_mflops: float, drops: tuple[float, ...] = (1, 2, 3)) -> list[dict]:
    """For each allowed accuracy drop (points), choose rho on the validation curve (the cheapest rho
    whose validation accuracy is within `drop` of the baseline's validation accuracy) and report
    what that rho gives on the test curve."""
    rows = []
    for d in drops:
        ok = np.flatnonzero(val["accuracy"] >= base_val_acc - d / 100 - 1e-12)
        row = {"drop_points": d, "rho": None, "val_accuracy": None, "val_mflops": None, "test_accuracy": None,
               "test_mflops": None, "test_flops_reduction_pct": None, "test_drop_points": None}
        if len(ok):
            i = ok[np.lexsort((-val["rho"][ok], val["mflops"][ok]))[0]]  # cheapest, then the highest rho
            row |= {"rho": float(val["rho"][i]), "val_accuracy": float(val["accuracy"][i]),
                    "val_mflops": float(val["mflops"][i]), "test_accuracy": float(test["accuracy"][i]),
                    "test_mflops": float(test["mflops"][i]),
                    "test_flops_reduction_pct": 100 * (1 - float(test["mflops"][i]) / base_mflops),
                    "test_drop_points": 100 * (base_test_acc - float(test["accuracy"][i]))}
        rows.append(row)
    return rows


# -- one threshold per early exit (k >= 2 early exits)

def exits_taken_vector(probs: list[np.ndarray], thresholds: np.ndarray) -> np.ndarray:
    """(N,): the exit each sample leaves at under one threshold per early exit (`thresholds` (K-1,))."""
    return vector_exits(probs, np.atleast_2d(np.asarray(thresholds, dtype=np.float64)))[0]


def vector_exits(probs: list[np.ndarray], thresholds: np.ndarray) -> np.ndarray:
    """(R, N): `exits_taken_vector` for each row of thresholds (R, K-1)."""
    return first_passing(np.stack([p.max(axis=1) for p in probs[:-1]]), thresholds)


def vector_sweep(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], thresholds: np.ndarray) -> dict:
    """`sweep` with a threshold per early exit: thresholds (R, K-1), row r the thresholds of exits 1..K-1.
    Returns thresholds, accuracy (R,), mflops (R,), exit_rate (R, K)."""
    thresholds = np.atleast_2d(np.asarray(thresholds, dtype=np.float64))
    n = len(labels)
    exit_idx = vector_exits(probs, thresholds)
    preds = np.stack([p.argmax(axis=1) for p in probs])
    pred = preds[exit_idx, np.arange(n)]
    return {"thresholds": thresholds, "accuracy": (pred == labels[None, :]).mean(axis=1),
            "mflops": np.asarray(costs, dtype=np.float64)[exit_idx].mean(axis=1),
            "exit_rate": np.stack([(exit_idx == i).mean(axis=1) for i in range(len(probs))], axis=1)}


def coordinate_search(probs: list[np.ndarray], labels: np.ndarray, costs: list[float], min_accuracy: float,
                      grid: np.ndarray = RHOS, rounds: int = 10) -> np.ndarray | None:
    """The threshold vector (K-1,) of least mean MFLOPs whose accuracy is >= `min_accuracy`, by coordinate
    search: start from the best shared threshold (`sweep`'s), then move one exit's threshold at a time over
    `grid`, the others held, to the cheapest point still accurate enough (ties: the higher threshold), until
    a whole round changes nothing. Every step keeps the accuracy and never raises the cost, so the result is
    at least as cheap as the best shared threshold; it is a local optimum, not always the global one.
    None when no shared threshold is accurate enough."""
    shared = sweep(probs, labels, costs, grid)
    ok = np.flatnonzero(shared["accuracy"] >= min_accuracy - 1e-12)
    if not len(ok):
        return None
    best = np.full(len(probs) - 1, shared["rho"][ok[np.lexsort((-shared["rho"][ok], shared["mflops"][ok]))[0]]])
    for _ in range(rounds):
        before = best.copy()
        for j in range(len(best)):
            trial = np.repeat(best[None], len(grid), axis=0)
            trial[:, j] = grid
            c = vector_sweep(probs, labels, costs, trial)
            ok = np.flatnonzero(c["accuracy"] >= min_accuracy - 1e-12)  # never empty: best[j] is on the grid
            best = trial[ok[np.lexsort((-grid[ok], c["mflops"][ok]))[0]]].copy()
        if np.array_equal(best, before):
            break
    return best


def vector_tradeoffs(val_probs: list[np.ndarray], val_labels: np.ndarray, test_probs: list[np.ndarray],
                     test_labels: np.ndarray, costs: list[float], base_val_acc: float, base_test_acc: float,
                     base_mflops: float, drops: tuple[float, ...] = (1, 2, 3)) -> list[dict]:
    """`tradeoffs` with a threshold per early exit, chosen on validation by `coordinate_search`; each row
    also gives `rhos` (the vector) and what it gives on test."""
    rows = []
    for d in drops:
        best = coordinate_search(val_probs, val_labels, costs, base_val_acc - d / 100)
        row = {"drop_points": d, "rhos": None, "val_accuracy": None, "val_mflops": None, "test_accuracy": None,
               "test_mflops": None, "test_flops_reduction_pct": None, "test_drop_points": None}
        if best is not None:
            v = vector_sweep(val_probs, val_labels, costs, best)
            t = vector_sweep(test_probs, test_labels, costs, best)
            row |= {"rhos": [float(r) for r in best], "val_accuracy": float(v["accuracy"][0]),
                    "val_mflops": float(v["mflops"][0]), "test_accuracy": float(t["accuracy"][0]),
                    "test_mflops": float(t["mflops"][0]),
                    "test_flops_reduction_pct": 100 * (1 - float(t["mflops"][0]) / base_mflops),
                    "test_drop_points": 100 * (base_test_acc - float(t["accuracy"][0]))}
        rows.append(row)
    return rows
