"""A threshold per early exit: the vector sweep and the coordinate search that chooses the thresholds."""

from __future__ import annotations

import itertools

import numpy as np

from common.evaluation import sweep


def three_exits(seed: int = 0, n: int = 400):
    """Two early exits and a final one on synthetic labels: exit 1 is over-confident (its confidence says
    little), exit 2 is well calibrated, so one shared threshold is a poor compromise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)

    def exit_probs(acc: float, conf_right: float, conf_wrong: float) -> np.ndarray:
        right = rng.random(n) < acc
        pred = np.where(right, labels, (labels + rng.integers(1, 5, n)) % 5)
        conf = np.clip(np.where(right, conf_right, conf_wrong) + rng.normal(0, 0.05, n), 0.21, 0.99)
        p = np.tile(((1 - conf) / 4)[:, None], (1, 5))
        p[np.arange(n), pred] = conf
        return p

    return [exit_probs(0.6, 0.9, 0.85), exit_probs(0.85, 0.8, 0.4), exit_probs(0.95, 0.9, 0.6)], labels


def test_vector_sweep_with_equal_thresholds_is_the_shared_sweep():
    probs, labels = three_exits()
    costs = [1.0, 2.0, 4.0]
    shared = sweep.sweep(probs, labels, costs)
    vec = sweep.vector_sweep(probs, labels, costs, np.repeat(shared["rho"][:, None], 2, axis=1))
    for k in ("accuracy", "mflops", "exit_rate"):
        np.testing.assert_allclose(vec[k], shared[k])


def test_coordinate_search_is_accurate_enough_no_dearer_than_shared_and_near_the_exhaustive_best():
    probs, labels = three_exits()
    costs = [1.0, 2.0, 4.0]
    final_acc = float((probs[-1].argmax(1) == labels).mean())
    grid = np.round(np.linspace(0, 1, 21), 2)
    for drop in (0.01, 0.03):
        need = final_acc - drop
        best = sweep.coordinate_search(probs, labels, costs, need, grid=grid)
        got = sweep.vector_sweep(probs, labels, costs, best)
        assert got["accuracy"][0] >= need - 1e-12
        shared = sweep.sweep(probs, labels, costs, grid)
        assert got["mflops"][0] <= shared["mflops"][shared["accuracy"] >= need - 1e-12].min() + 1e-12
        every = np.array(list(itertools.product(grid, grid)))
        all_ = sweep.vector_sweep(probs, labels, costs, every)
        optimum = all_["mflops"][all_["accuracy"] >= need - 1e-12].min()
        assert optimum <= got["mflops"][0] <= optimum * 1.05  # a local optimum, here within 5% of the global


def test_no_threshold_vector_when_even_the_full_model_misses_the_accuracy():
    probs, labels = three_exits()
    assert sweep.coordinate_search(probs, labels, [1.0, 2.0, 4.0], min_accuracy=1.01) is None


def test_vector_tradeoffs_choose_on_validation_and_report_test():
    (pv, lv), (pt, lt) = three_exits(0), three_exits(1)
    costs = [1.0, 2.0, 4.0]
    base_v, base_t = (float((p[-1].argmax(1) == y).mean()) for p, y in ((pv, lv), (pt, lt)))
    rows = sweep.vector_tradeoffs(pv, lv, pt, lt, costs, base_v, base_t, 4.0)
    assert [r["drop_points"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert len(r["rhos"]) == 2 and r["val_accuracy"] >= base_v - r["drop_points"] / 100 - 1e-12
        t = sweep.vector_sweep(pt, lt, costs, np.array(r["rhos"]))
        assert np.isclose(r["test_mflops"], t["mflops"][0])
        assert np.isclose(r["test_drop_points"], 100 * (base_t - t["accuracy"][0]))
