"""Thresholds with a guarantee (common.evaluation.calibrate) and the re-split study that checks them."""

from __future__ import annotations

import numpy as np
import pytest

from common.evaluation import calibrate, pvalues, sweep
from common.studies import resplit


@pytest.mark.parametrize("method", pvalues.METHODS)
def test_p_values_are_valid_at_the_boundary(method: str):
    """Losses whose true mean is exactly the bound: H0 holds, so it is rejected at most delta of the time."""
    rng = np.random.default_rng(0)
    bound, delta = 0.02, 0.05
    # paired losses in {-1, 0, 1} with P(1) - P(-1) = bound, most of them 0 (as a good early exit gives)
    loss = rng.choice([-1.0, 0.0, 1.0], size=(2000, 400), p=[0.04, 0.92 - bound, 0.04 + bound])
    rejected = pvalues.p_values(loss, bound, delta, method) <= delta
    assert rejected.mean() <= delta + 0.015  # 2,000 draws: about 3 standard errors of slack


@pytest.mark.parametrize("method", pvalues.METHODS)
def test_p_values_reject_when_the_drop_is_far_below_the_bound(method: str):
    rng = np.random.default_rng(1)
    loss = rng.choice([-1.0, 0.0, 1.0], size=(50, 5000), p=[0.04, 0.955, 0.005])  # mean drop -0.035
    assert (pvalues.p_values(loss, 0.01, 0.05, method) <= 0.05).mean() > 0.9


def test_fixed_sequence_stops_at_the_first_rho_it_cannot_reject():
    rhos = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    mflops = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    p = np.array([0.001, 0.9, 0.001, 0.01, 0.001])  # 1.0, 0.8, 0.6 rejected; 0.4 not: 0.2 is never reached
    assert calibrate.fixed_sequence(p, rhos, mflops, 0.05) == (0.6, [1.0, 0.8, 0.6])
    assert calibrate.fixed_sequence(np.full(5, 0.5), rhos, mflops, 0.05) == (None, [])


def _toy(n: int, early_right: float, seed: int = 0):
    """A two-exit model whose final exit and baseline are always right; the early exit is right on about
    `early_right` of the samples, confident (0.95) when right and unsure (0.55) when wrong."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    right = rng.random(n) < early_right
    pred = np.where(right, labels, (labels + 1) % 3)
    early = np.full((n, 3), 0.0)
    early[np.arange(n), pred] = np.where(right, 0.95, 0.55)
    early[np.arange(n), (pred + 1) % 3] = 1 - early[np.arange(n), pred]
    final = np.eye(3)[labels]
    return [early, final], labels, [1.0, 2.0], np.ones(n, bool)


def test_calibrate_certifies_a_good_exit_and_refuses_a_bad_one():
    probs, labels, costs, base = _toy(3000, 0.9)
    good = calibrate.calibrate(probs, labels, costs, base, max_drop=0.02, delta=0.05)
    assert good.rho is not None and 0.55 < good.rho <= 0.95  # the wrong (unsure) answers never exit
    assert list(good.p_values) == sorted(good.p_values, reverse=True)  # tested from the most conservative down
    probs, labels, costs, base = _toy(3000, 0.5)  # half the early answers wrong, as confident as the right ones
    probs[0][:] = np.where(probs[0] == 0.55, 0.95, np.where(probs[0] == 0.45, 0.05, probs[0]))
    bad = calibrate.calibrate(probs, labels, costs, base, max_drop=0.02, delta=0.05)
    assert bad.rho is not None and min(bad.certified) > 0.95  # only the rhos at which nothing exits early
    none = calibrate.calibrate(probs, labels, costs, base, max_drop=0.02, delta=0.05, rhos=np.array([0.0, 0.5]))
    assert none.rho is None and none.certified == ()


def test_label_free_mode_needs_no_labels_and_bounds_disagreement():
    probs, _, costs, _ = _toy(3000, 0.9)
    cal = calibrate.calibrate_label_free(probs, costs, max_disagreement=0.02, delta=0.05)
    taken = probs[0].max(axis=1) >= cal.rho
    assert cal.rho is not None and (probs[0][taken].argmax(1) != probs[1][taken].argmax(1)).mean() <= 0.02


def test_the_resplit_study_sees_the_validation_rule_break_and_the_guaranteed_one_hold():
    probs, labels, costs, base = _toy(2000, 0.9, seed=3)
    # an early exit that is wrong on 3% of its confident answers too: the budget binds
    rng = np.random.default_rng(4)
    flip = (probs[0].max(axis=1) > 0.9) & (rng.random(len(labels)) < 0.03)
    probs[0][flip] = probs[0][flip][:, [1, 2, 0]]
    data = resplit.Pooled(probs, labels, base, costs, base_mflops=2.0)
    rows = {r["rule"]: r for r in resplit.summarise("toy", resplit.study(data, splits=40, max_drop=0.01,
                                                                         measure="pooled population"),
                                                     0.01, 0.05, len(labels), "pooled population")}
    assert set(rows) == set(resplit.RULES)
    assert rows["wsr"]["violation_rate"] <= rows["validation"]["violation_rate"]
    assert rows["wsr"]["violation_ci95_low"] <= 0.05  # WSR's rate stays within delta, up to the splits' noise
    assert all(0 <= r["violation_ci95_low"] <= r["violation_rate"] <= r["violation_ci95_high"] <= 1
               for r in rows.values())


def test_clopper_pearson_covers_the_edges_and_the_true_rate():
    assert resplit.clopper_pearson(0, 500)[0] == 0.0 and resplit.clopper_pearson(500, 500)[1] == 1.0
    # a 95% interval holds the true rate at least 95% of the time (exact intervals are conservative); one
    # that hugged k/n too tightly would miss it far more often
    for p in (0.01, 0.05, 0.3):
        ks = np.random.default_rng(3).binomial(500, p, size=400)
        covered = [low <= p <= high for low, high in (resplit.clopper_pearson(int(k), 500) for k in ks)]
        assert np.mean(covered) >= 0.93, p


def test_a_nan_p_value_never_rejects():
    rhos, mflops = np.array([0.5, 1.0]), np.array([1.0, 2.0])
    assert calibrate.fixed_sequence(np.array([0.001, np.nan]), rhos, mflops, 0.05) == (None, [])


def test_the_zero_loss_budget_depends_on_the_sample_count_alone_and_is_no_floor():
    """At zero_loss_budget(n) a zero loss on every sample is just rejected, a little below it not (deploy's
    automatic budget); it is no floor: samples where the early exit beats the baseline (loss -1) certify a budget
    below it."""
    for n in (200, 450, 5000):
        b = calibrate.zero_loss_budget(n)
        zero = np.zeros((1, n))
        assert pvalues.p_values(zero, b, 0.05, "wsr")[0] <= 0.05 < pvalues.p_values(zero, b - 1e-3, 0.05, "wsr")[0]
    assert calibrate.zero_loss_budget(450) > 0.01 > calibrate.zero_loss_budget(5000)
    assert calibrate.zero_loss_budget(200) > calibrate.zero_loss_budget(450)
    better = np.zeros((1, 200))
    better[0, :20] = -1  # the early exit right where the baseline is wrong on 10% of the samples
    assert pvalues.p_values(better, calibrate.zero_loss_budget(200) / 2, 0.05, "wsr")[0] <= 0.05


def test_hb_bounds_the_two_tails_apart_so_a_rare_loss_certifies():
    """Hoeffding-Bentkus on P(+1) and P(-1) apart: a zero loss on 450 samples certifies 1 point (one bound on
    the loss mapped onto [0, 1] needed about 44,000); a loss that is +1 or -1 often needs far more than
    betting, which adapts to the variance; and one +1 sample more never lowers the p-value."""
    assert calibrate.zero_loss_budget(450, method="hb") < 0.01 < calibrate.zero_loss_budget(450, method="wsr")
    assert calibrate.samples_needed(0.05, 0.01, method="hb") > calibrate.samples_needed(0.05, 0.01, method="wsr")
    loss = np.zeros((2, 500))
    loss[1, 0] = 1.0
    p = pvalues.p_values(loss, 0.01, 0.05, "hb")
    assert p[0] < p[1] and pvalues.p_values(np.ones((1, 50)), 0.5, 0.05, "hb")[0] == 1.0


def _three_exits(n: int, seed: int = 0):
    """Two early exits and a final exit that is always right, as is the baseline: exit 1 is right when confident
    (0.9) on 60% of the samples, exit 2 on 80%; wrong answers are unsure (0.5)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    probs = []
    for p_right in (0.6, 0.8):
        right = rng.random(n) < p_right
        pred = np.where(right, labels, (labels + 1) % 3)
        out = np.zeros((n, 3))
        out[np.arange(n), pred] = np.where(right, 0.9, 0.5)
        out[np.arange(n), (pred + 2) % 3] = 1 - out[np.arange(n), pred]
        probs.append(out)
    return [*probs, np.eye(3)[labels]], labels, [1.0, 2.0, 3.0], np.ones(n, bool)


def test_a_threshold_per_exit_is_certified_on_data_that_did_not_choose_its_path():
    probs, labels, costs, base = _three_exits(4000)
    cal = calibrate.calibrate_per_exit(probs, labels, costs, base, max_drop=0.02, delta=0.05)
    assert cal.ok and cal.rho is None and len(cal.rhos) == 2 and cal.thresholds(2) == list(cal.rhos)
    assert all(0.5 < r <= 0.9 for r in cal.rhos)  # the unsure (wrong) answers never exit, the sure ones do
    assert "2000 samples chose the path, 2000 others tested it" in cal.samples
    # the path, from one half alone: its first vector as accurate there as nothing exiting early, each new
    path = calibrate.vector_path([p[:2000] for p in probs], labels[:2000], costs, base[:2000], 0.02)
    first = sweep.vector_sweep([p[:2000] for p in probs], labels[:2000], costs, np.array(path[0]))["accuracy"][0]
    assert first == 1.0 and len(set(path)) == len(path) >= 1
    bad = [np.roll(probs[0], 1, axis=1), np.roll(probs[1], 1, axis=1), probs[2]]  # confident and always wrong
    assert calibrate.calibrate_per_exit(bad, labels, costs, base, 0.02, 0.05).rhos in (None, (1.0, 1.0))


def test_calibration_refuses_arguments_no_guarantee_comes_from():
    probs, labels, costs, base = _toy(100, 0.9)
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\), got 1.5 \(points\? 1.5 points is 0.015\)"):
        calibrate.calibrate(probs, labels, costs, base, max_drop=1.5)
    with pytest.raises(ValueError, match=r"max_drop must be a fraction in \(0, 1\), got 1 "):
        calibrate.calibrate(probs, labels, costs, base, max_drop=1.0, method="hb")
    with pytest.raises(ValueError, match="max_disagreement must be a fraction"):
        calibrate.calibrate_label_free(probs, costs, max_disagreement=-0.01)
    with pytest.raises(ValueError, match="delta must be in"):
        calibrate.calibrate(probs, labels, costs, base, delta=0.0)
    with pytest.raises(ValueError, match="labels has 99 samples but the exits' outputs have 100"):
        calibrate.calibrate(probs, labels[:99], costs, base)
    with pytest.raises(ValueError, match="base_right has 10 samples"):
        calibrate.calibrate_per_exit([probs[0], *probs], labels, [0.5, *costs], base[:10])


def test_the_planner_says_how_many_labelled_samples_a_budget_needs():
    """More disagreement with the baseline, or a tighter budget, needs more samples; with none, the planner
    agrees with zero_loss_budget (450 samples certify 1.34 points, so 1 point needs more than 450)."""
    n = {d: calibrate.samples_needed(d, 0.01) for d in (0.0, 0.05)}
    assert 450 < n[0.0] < 800 and n[0.05] > 2 * n[0.0]
    assert calibrate.samples_needed(0.05, 0.02) < n[0.05]
    assert calibrate.zero_loss_budget(n[0.0]) <= 0.0101
    with pytest.raises(ValueError, match="never certifies"):
        calibrate.samples_needed(0.05, 0.01, drop=0.02)
