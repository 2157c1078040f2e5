"""Exit signals (`evaluation.signals`): scores in [0, 1] that grow with the decision to exit, the integer scores a
device computes meaning exactly what the host's do, fitting on data apart, the limit, certification through the
threshold module, the runtime and the study."""

from __future__ import annotations

import numpy as np
import pytest

from common.evaluation import calibrate, signals, sweep, thresholds
from common.studies import signals as study
from common.studies.resplit import Pooled

SCALE, ZERO = 1 / 256, -128  # a softmax output's int8 parameters


def model_outputs(n: int = 600, classes: int = 6, seed: int = 0, agree_by: str = "p1") -> tuple[list, np.ndarray]:
    """Two early exits and a final one on n samples: labels, softmax outputs whose confidence (or, with
    agree_by="second", whose second class) tells whether an exit agrees with the final one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    final = np.where(rng.uniform(size=n) < 0.9, y, rng.integers(0, classes, n))
    probs = []
    for k in range(2):
        agree = rng.uniform(size=n) < 0.5 + 0.2 * k
        pred = np.where(agree, final, (final + 1 + rng.integers(0, classes - 1, n)) % classes)
        conf = np.where(agree, rng.uniform(0.5, 0.95, n), rng.uniform(0.3, 0.7, n))
        p = np.full((n, classes), 0.0)
        p[np.arange(n), pred] = conf
        rest = (1 - conf)[:, None] * rng.dirichlet(np.ones(classes - 1) * (0.3 if agree_by == "second" else 3), n)
        others = np.array([[c for c in range(classes) if c != t] for t in pred])
        np.put_along_axis(p, others, rest, axis=1)
        probs.append(p)
    fp = np.full((n, classes), 0.02)
    fp[np.arange(n), final] = 1 - 0.02 * (classes - 1)
    return [*probs, fp], y


def quantized(p: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(p / SCALE + ZERO), -128, 127) - ZERO) * SCALE


def fitted(name: str, probs, y) -> signals.Signal:
    return signals.fit(name, probs, y)


@pytest.mark.parametrize("name", signals.SIGNALS)
def test_every_signal_scores_in_zero_one_and_its_integer_scores_mean_the_same(name):
    probs, y = model_outputs()
    sig = fitted(name, probs, y)
    q = [quantized(p) for p in probs]
    floats, ints = sig.scores(q), sig.scores(q, [(SCALE, ZERO)] * 2)
    for f, i in zip(floats, ints, strict=True):
        assert np.all((f >= -1e-9) & (f <= 1 + 1e-9)) and np.all((i >= -1e-9) & (i <= 1 + 1e-9))
        # the device's integer arithmetic (tables in 1/65536, ratios in 1/256) is within a few steps of the floats
        assert np.corrcoef(f, i)[0, 1] > 0.99 and np.abs(f - i).max() < (0.03 if name == "temperature" else 0.01)
    if name in ("max_softmax", "margin"):  # exact: integer steps of the output's own scale
        assert all(np.array_equal(f, i) for f, i in zip(floats, ints, strict=True))


@pytest.mark.parametrize("name", signals.SIGNALS)
def test_the_integer_threshold_exits_exactly_where_the_unit_score_reaches_rho(name):
    probs, y = model_outputs(seed=1)
    sig = fitted(name, probs, y)
    q = quantized(probs[0])
    s = sig.int_scores(q, 0, SCALE, ZERO)
    unit = sig.unit(s, 0, q.shape[1], SCALE)
    for rho in (0.0, 0.05, 0.3, 0.55, 0.8, 0.97, 1.0, float("inf"), None):
        t = sig.int_threshold(rho, 0, q.shape[1], SCALE)
        want = np.zeros(len(s), bool) if rho is None else unit >= rho
        assert np.array_equal(s >= t, want), rho


def test_the_c_runner_formula_handles_ties_and_all_zero_scores():
    sig = signals.Signal("margin")
    t = sig.tables(0, 3, SCALE, ZERO)
    q = np.array([[10, 10, -128], [-128, -128, -128], [127, -128, -128]])
    assert list(signals.integer_score(q, t, ZERO)) == [0, 0, 255]  # a tie's margin is 0
    temp = signals.Signal("temperature", ((2.0,),))
    s = signals.integer_score(q, temp.tables(0, 3, SCALE, ZERO), ZERO)
    assert s[1] == -3 * signals.FIXED  # no class above zero: every ratio is 1, the score 1/3
    assert temp.unit(s, 0, 3, SCALE)[1] == pytest.approx(1 / 3)


def test_fitting_needs_its_data_and_names_are_checked():
    probs, _ = model_outputs()
    with pytest.raises(ValueError, match="temperature signal is fitted on labelled data"):
        signals.fit("temperature", probs, None)
    with pytest.raises(ValueError, match="signal must be one of"):
        signals.Signal("confidence")
    with pytest.raises(ValueError, match="parameters for 1 early exit"):
        signals.Signal("gate", ((1.0, 0.0, 0.0, 0.0),)).scores(probs)
    gate = signals.fit("gate", probs, None, "validation")  # the gate needs no labels
    assert len(gate.params) == 2 and all(p[0] > 0 for p in gate.params)  # a confident exit agrees more often
    assert "validation" in gate.fitted_on
    assert signals.Signal.from_dict(gate.describe()) == gate


def test_the_limit_sends_each_sample_to_the_first_exit_that_agrees_with_the_final_one():
    final = np.eye(3)[[0, 1, 2, 0]]
    e1 = np.eye(3)[[0, 2, 2, 1]]
    e2 = np.eye(3)[[1, 1, 0, 1]]
    got = signals.limit([e1, e2, final], [1.0, 2.0, 4.0])
    assert got["mflops"] == pytest.approx((1 + 2 + 1 + 4) / 4)
    assert (got["exit_rate_0"], got["exit_rate_1"], got["exit_rate_2"]) == (0.5, 0.25, 0.25)


def test_a_better_signal_certifies_a_cheaper_threshold_through_the_threshold_module():
    probs, y = model_outputs(n=4000, seed=2, agree_by="second")
    right = probs[-1].argmax(axis=1) == y
    costs = [1.0, 2.0, 3.0]
    perfect = [(p.argmax(axis=1) == probs[-1].argmax(axis=1)).astype(float) for p in probs[:-1]]
    plain = thresholds.choose("certified", probs, y, costs, right, 0.02)
    oracle = thresholds.choose("certified", probs, y, costs, right, 0.02, confidences=perfect)
    cost = lambda conf, rho: float(np.asarray(costs)[sweep.exits_taken(probs, [rho], conf)[0]].mean())  # noqa: E731
    assert oracle.ok and cost(perfect, oracle.rho) < (cost(None, plain.rho) if plain.ok else 3.0)
    with pytest.raises(ValueError, match="certified_per_exit rule thresholds max softmax only"):
        thresholds.choose("certified_per_exit", probs, y, costs, right, 0.02, confidences=perfect)
    free = calibrate.calibrate_label_free(probs, costs, 0.02, confidences=perfect)
    assert free.ok and free.rho > 0  # no disagreement at all where the signal is perfect


def test_the_study_reports_every_rule_against_the_limit_and_ships_only_beyond_noise():
    def pool(seed):
        probs, y = model_outputs(n=500, seed=seed)
        return Pooled(probs, y, probs[-1].argmax(axis=1) == y, [1.0, 2.0, 3.0], 3.0)

    rows = study.study({"val": pool(3), "calibration": pool(4), "test": pool(5)}, budget=1, rounds=50)
    assert [r["signal"] for r in rows] == list(signals.SIGNALS)
    for r in rows:
        assert 0 <= r["test_cut_tuned_pct"] <= r["test_limit_cut_pct"] + 1e-9 or r["test_final_drop_points"] < -1
        assert r["test_share_of_limit_tuned"] == pytest.approx(r["test_cut_tuned_pct"] / r["test_limit_cut_pct"])
        assert (r["val_margin_ci95"] is None) == (r["signal"] == "max_softmax")
    assert sum(r["ships"] for r in rows) == 1 and sum(r["best_on_validation"] for r in rows) == 1
    ship = next(r for r in rows if r["ships"])
    assert ship["signal"] == "max_softmax" or ship["val_margin_ci95"][0] > 0


def test_the_board_cost_of_a_signal_is_read_beside_the_same_graphs_on_max_softmax(tmp_path):
    """signals_board.csv: the head's instructions under the gate minus under max softmax, weighted by how often the
    exit runs, as a share of the baseline's; a record of another deployment is refused by the checked reader."""
    import json

    from conftest import fake_deployment

    from common.errors import ModelFileError
    from common.reporting import signals as report

    gate = {"name": "gate", "params": [[1.0, -1.0, 1.0, 0.0]], "fitted_on": "the validation split, 9 samples"}
    deps = {"trecx": fake_deployment(tmp_path / "deploy" / "trecx"),
            "trecx_gate": fake_deployment(tmp_path / "deploy" / "trecx_gate", signal=gate)}
    for (name, dep), head in zip(deps.items(), (1000.0, 1300.0), strict=True):
        rec = dep.stamp() | {"samples": 10, "bit_exact": True, "exit_rates": {"head": 0.6, "tail": 0.4},
                             "instructions": {"per_segment_when_run": {"head": head, "tail": 5000.0},
                                              "baseline": 6000.0}}
        (tmp_path / "deploy" / name / "firmware_cortex-m4_cmsis_nn.json").write_text(json.dumps(rec))
    (row,) = report.board_rows(tmp_path)
    assert (row["folder"], row["beside"], row["signal"]) == ("trecx_gate", "trecx", "gate")
    assert row["signal_instructions_per_sample"] == pytest.approx(300.0)  # every sample runs the head
    assert row["signal_pct_of_baseline"] == pytest.approx(5.0)
    fake_deployment(tmp_path / "deploy" / "trecx_gate", signal=gate | {"params": [[2.0, -1.0, 1.0, 0.0]]})
    with pytest.raises(ModelFileError, match="another deployment"):
        report.board_rows(tmp_path)


def test_the_targets_judge_the_rule_best_on_validation_not_the_best_on_test():
    from common.commands.signals import targets

    def row(signal, share, best, cut1):
        return {"model": "trecx2", "signal": signal, "test_share_of_limit_tuned": share, "best_on_validation": best,
                "smallest_certified_points": 1, "certified_1pt_test_cut_pct": cut1}

    rows = [row("max_softmax", 0.80, False, 30.0), row("margin", 0.95, False, 40.0), row("gate", 0.91, True, 32.0)]
    share, rise = targets("image_classification", rows)
    assert share["rule"] == "gate" and share["met"] and share["measured"] == 0.91
    assert "max softmax 0.80" in share["note"]
    assert rise["measured"] == pytest.approx(2.0) and not rise["met"]  # +2 points: short of 3
    assert targets("visual_wake_words", rows)[0]["met"] is None
    board = [{"folder": "trecx2_gate", "board": "m4", "signal": "gate", "signal_pct_of_baseline": 2.5,
              "signal_instructions_per_sample": 9.0, "beside": "trecx2"}]
    gate = targets("keyword_spotting", rows, board)[0]
    assert gate["measured"] == 2.5 and gate["required"] == 2.0 and not gate["met"]
