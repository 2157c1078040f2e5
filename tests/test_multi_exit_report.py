"""Several early exits against one at the same budget (reporting.multi_exit), and a target with a margin."""

from __future__ import annotations

from conftest import summary_dict, tradeoff

from common.evaluation.summary import Summary
from common.reporting import multi_exit


def two_exits(cut: float, vector_cut: float, drop: float) -> Summary:
    d = summary_dict([{"rho": 0.8, "val_mflops": 7.0, "test_flops_reduction_pct": cut, "test_drop_points": drop}])
    cost = d["exit_costs"]["final"]
    d["exits"] = ["exit_1", "exit_2", "final"]
    d["exit_costs"] = {e: cost for e in d["exits"]}
    d["standalone"] = {e: {"val": 0.8, "test": 0.8} for e in d["exits"]}
    d["vector_tradeoffs"] = [{k: v for k, v in tradeoff(val_mflops=6.0, test_flops_reduction_pct=vector_cut,
                                                          test_drop_points=drop).items() if k != "rho"}
                             | {"rhos": [0.9, 0.7]}]
    return Summary.from_dict(d)


def test_rows_hold_several_exits_against_one_with_their_gain_and_budget():
    one = Summary.from_dict(summary_dict([{"rho": 0.7, "val_mflops": 8.0, "test_flops_reduction_pct": 30.0,
                                           "test_drop_points": 0.5}]))
    rows = multi_exit.rows({"trecx_plus": one, "trecx2": two_exits(33.0, 35.0, 1.2)})
    assert [(r["model"], r["rule"]) for r in rows] == [("trecx_plus", "shared rho"), ("trecx2", "shared rho"),
                                                      ("trecx2", "rho per exit")]
    vector = rows[-1]
    assert vector["thresholds"] == "0.9 0.7" and vector["test_cut_gain_over_one_exit_points"] == 5.0
    assert vector["within_budget"] is False and rows[0]["within_budget"] is True  # 1.2 points over a 1-point budget
    assert vector["val_flops_cut_pct"] == 40.0  # 1 - 6 / 10


def test_a_shipped_copy_shows_once_and_no_one_exit_model_means_no_table():
    a = two_exits(33.0, 35.0, 0.5)
    one = Summary.from_dict(summary_dict([{"rho": 0.7, "test_flops_reduction_pct": 30.0}]))
    rows = multi_exit.rows({"trecx_plus": one, "trecx2_ee1_ee3": a, "trecx2": a})
    assert {r["model"] for r in rows} == {"trecx_plus", "trecx2"}
    assert multi_exit.rows({"trecx2": a}) == []
    assert multi_exit.rows({"trecx_plus": one, "sdn": a}) == []  # prior methods have their own tables
