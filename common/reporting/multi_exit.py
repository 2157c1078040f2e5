"""Several early exits against one, at the same accuracy budget: `results/<task>/multi_exit.csv` and
`multi_exit.png` (written by every test run that holds a model with two or more early exits).

Per model and allowed drop (1/2/3 points below the baseline), the FLOPs cut on validation and on test and
the drop it really gave on test, for each way of choosing the thresholds on validation: one rho shared by
every exit (`sweep.tradeoffs`) and, for several early exits, one threshold per exit (`sweep.coordinate_search`);
each several-exit row also gives its test-cut gain over the one-exit model at the same budget.
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation import plots
from ..evaluation.summary import Summary, Tradeoff
from ..files import write_csv

ONE_EXIT = "trecx_plus"  # the best shipped one-exit design: what the several-exit models are held against
SHIPPED = "trecx2"  # the two-exit design shipped (`promote --ship-as trecx2`, chosen on validation)
CSV, FIGURE = "multi_exit.csv", "multi_exit.png"


def _row(model: str, s: Summary, rule: str, t: Tradeoff, vector: bool) -> dict:
    within = None if t.test_drop_points is None else t.test_drop_points <= t.drop_points + 1e-9
    return {"model": model, "early_exits": len(s.exits) - 1, "rule": rule, "drop_points": t.drop_points,
            "thresholds": " ".join(f"{r:g}" for r in t.rhos) if t.rhos else t.rho,
            "val_flops_cut_pct": s.val_cut(t.drop_points, vector=vector),
            "test_flops_cut_pct": t.test_flops_reduction_pct, "test_drop_points": t.test_drop_points,
            "within_budget": within}


def rows(summaries: dict[str, Summary], one_exit: str = ONE_EXIT) -> list[dict]:
    """The comparison rows: the one-exit model, then every model with several early exits."""
    # T-RecX designs only: the prior methods' many exits (SDN, BranchyNet) have their own tables
    several = [n for n, s in summaries.items() if n.startswith("trecx") and len(s.exits) > 2 and s.vector]
    several.sort(key=lambda n: (n != SHIPPED, n))
    # a shipped copy (`trecx2` is one of its candidates) is shown once, under the shipped name
    several = [n for i, n in enumerate(several) if all(summaries[n] != summaries[m] for m in several[:i])]
    if one_exit not in summaries or not several:
        return []
    out = [_row(one_exit, summaries[one_exit], "shared rho", t, False) for t in summaries[one_exit].tradeoffs]
    ref = {r["drop_points"]: r["test_flops_cut_pct"] for r in out}
    for n in several:
        s = summaries[n]
        for rule, ts, vector in (("shared rho", s.tradeoffs, False), ("rho per exit", s.vector, True)):
            for t in ts:
                row = _row(n, s, rule, t, vector)
                one = ref.get(t.drop_points)
                row["test_cut_gain_over_one_exit_points"] = (None if one is None or row["test_flops_cut_pct"] is None
                                                             else row["test_flops_cut_pct"] - one)
                out.append(row)
    return out


def write(out_dir: Path, summaries: dict[str, Summary], baseline: str, title: str = "") -> list[dict]:
    """multi_exit.csv and its figure (test benefit curves, shared rho, with the per-exit thresholds' test points
    marked); nothing when there is no several-exit model or no one-exit model to hold it against."""
    table = rows(summaries)
    if not table:
        return []
    write_csv(out_dir / CSV, table)
    models = list(dict.fromkeys(r["model"] for r in table))
    curves = {m: out_dir / m / "benefit_curve_test.csv" for m in models}
    points = {f"{m}, rho per exit (1/2/3 pt)": [(t.test_mflops, t.test_accuracy) for t in summaries[m].vector
                                                 if t.reached] for m in models if summaries[m].vector}
    b = summaries[baseline]
    plots.benefit_curves(curves, out_dir / FIGURE, baseline=(b.mflops(), b.accuracy()), baseline_label=baseline,
                         title=f"{title}: several exits vs one" if title else "", points=points)
    return table
