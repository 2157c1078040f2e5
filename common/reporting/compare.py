"""T-RecX against the paper and the prior early-exit methods, from a task's results files: Table 1
and Table 2 beside the paper's (table1_paper.csv, table2_paper.csv), Fig 7, table2.csv, comparison.md.

Written by every task's test.py (`reporting.report.test_models`) and by `python -m common compare --task TASK`.
Every number of ours comes from results/<task>/<model>/summary.json (read as a `Summary`) and
benefit_curve_test.csv, which the task's test.py wrote from one inference pass per model, with rho chosen
on the validation split; the paper's come from `reporting.paper` (its Tables 1 and 2, cited).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import files, paths
from ..evaluation import plots
from ..evaluation.summary import exists, load
from ..files import read_csv, write_csv
from ..models.prior import METHODS
from . import compute, paper
from .tables import markdown

TRECX = ("trecx", "trecx_plus")  # T-RecX as in the paper, and the best measured design beside it
PAPER_NOTE = f"The paper's numbers: {paper.CITATION}; its test sets are the full ones, ours may be subsets."


def table2(out: Path, models: list[str]) -> list[dict]:
    """Parameters, MFLOPs to each exit, standalone test accuracy of every exit, final-exit accuracy."""
    rows = []
    for m in models:
        s = load(out, m)
        if s is None:
            continue
        row = {"model": m, "params": s.params, "exits": len(s.exits)}
        for i, e in enumerate(s.exits, start=1):
            tag = "final" if e == "final" else f"exit{i}"
            row[f"{tag}_mflops"] = s.mflops(e)
            row[f"{tag}_test_accuracy"] = s.accuracy(e)
        rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c) for c in cols} for r in rows]


def table1_vs_paper(out: Path, task: str, baseline: str) -> list[dict]:
    """Table 1's numbers, ours (baseline and every T-RecX model tested) beside the paper's."""
    ref = paper.TABLE1.get(task)
    base, rows = load(out, baseline), []
    if ref is None or base is None:
        return rows
    rows += [{"metric": "baseline test accuracy (%)", "model": baseline,
              "ours": 100 * base.accuracy(), "paper": ref["baseline_accuracy"]},
             {"metric": "baseline MFLOPs", "model": baseline, "ours": base.mflops(), "paper": ref["baseline_mflops"]},
             {"metric": "baseline params", "model": baseline, "ours": base.params, "paper": ref["baseline_params"]}]
    for m in TRECX:
        s = load(out, m)
        if s is None:
            continue
        rows += [{"metric": "params", "model": m, "ours": s.params, "paper": ref["trecx_params"]},
                 {"metric": "early exit test accuracy (%)", "model": m,
                  "ours": 100 * s.accuracy("early_exit"), "paper": ref["early_exit_accuracy"]},
                 {"metric": "final exit test accuracy (%)", "model": m, "ours": 100 * s.accuracy(),
                  "paper": ref["final_accuracy"]}]
        for t, p in zip(s.tradeoffs, ref["trecx_mflops"], strict=False):
            rows.append({"metric": f"MFLOPs at {t.drop_points} pt", "model": m,
                         "ours": t.test_mflops if t.reached else None, "paper": p})
        t = s.tradeoff(1)
        rows.append({"metric": "FLOPs reduction at 1 pt (%)", "model": m,
                     "ours": t.test_flops_reduction_pct if t and t.reached else None,
                     "paper": ref["flops_reduction_pct_1pt"]})
    return rows


def table2_vs_paper(out: Path, task: str) -> list[dict]:
    """Table 2: parameters and standalone exit accuracies of T-RecX and the prior methods, ours and the paper's."""
    rows = []
    for m, (params, accs) in paper.TABLE2.get(task, {}).items():
        s = load(out, m)
        ours = [100 * s.accuracy(e) for e in s.exits] if s else []
        rows.append({"model": m, "params": s.params if s else None, "paper_params": params,
                     "exit_accuracies": " / ".join(f"{a:.1f}" for a in ours),
                     "paper_exit_accuracies": " / ".join(f"{a:.1f}" for a in accs)})
    return rows


SEEDS_METRICS = {"early_exit_test_accuracy": "early exit (%)", "final_test_accuracy": "final exit (%)",
                 "test_flops_reduction_pct_1pt": "FLOPs cut at 1 pt (%)"}


def in_percent(metric: str, v: float) -> float:
    """A SEEDS_METRICS value in percent: accuracies are stored as fractions, the FLOPs cut already is one."""
    return v if metric.endswith("pct_1pt") else 100 * v


def guaranteed_md(summaries: dict) -> list[str]:
    """The trade-offs with a guarantee (rho certified on the calibration split, `evaluation.calibrate`), on test."""
    if not summaries:
        return []
    g = next(iter(summaries.values())).guarantee
    rows = [{"model": m, **{f"at {t.drop_points} pt: rho, cut, test drop": "none certified" if not t.reached else
                            f"{t.rho:.2f}, {t.test_flops_reduction_pct:.1f}%, {t.test_drop_points:+.2f} pt"
                            for t in s.guaranteed}} for m, s in summaries.items()]
    return ["", "## With a guarantee", "",
            f"rho certified by Learn-then-Test on {g.get('calibrated_on')} ({g.get('method')} p-values): with "
            f"probability >= 1 - {g.get('delta')} over that split's draw, the expected drop on its distribution is "
            "within the budget (max-softmax exits only; `python -m common calibration` checks the rule on "
            "re-splits). The test drop stands beside each cut.", "",
            *markdown(rows, blank=False)]


def seed_split_note(seeds: Path, split: Path) -> str:
    """A sentence when the seed runs were tested on test splits of another size than the results beside them
    (`split`: their split.json)."""
    sizes = {(json.loads(p.read_text()).get("counts") or {}).get("test") for p in seeds.glob("*/split.json")} - {None}
    now = (json.loads(split.read_text()) if split.exists() else {}).get("counts", {}).get("test")
    if not sizes or sizes == {now}:
        return ""
    return (f" These runs were tested on {' / '.join(map(str, sorted(sizes)))} test samples, before the calibration "
            f"split was held out of the test split; the other test numbers here are on {now}.")


def seeds_md(out: Path) -> list[str]:
    """Table 1's main numbers and the paired ablation gains across seeds (the seeds command), mean [95% interval]."""
    summary, pairs = out / "seeds" / "summary.csv", out / "seeds" / "comparisons.csv"
    if not summary.exists():
        return []
    note = seed_split_note(out / "seeds", out / "split.json")
    lines = ["## Across seeds (`seeds/`: mean [95% interval])", "", *([note.strip(), ""] if note else [])]
    table: dict[str, dict] = {}
    for r in read_csv(summary):
        if (m := r["metric"]) in SEEDS_METRICS:
            table.setdefault(r["model"], {"model": r["model"], "n": int(r["n"])})[SEEDS_METRICS[m]] = (
                f"{in_percent(m, r['mean']):.2f} [{in_percent(m, r['ci95_low']):.2f}, "
                f"{in_percent(m, r['ci95_high']):.2f}]")
    lines += markdown([{c: r.get(c, "") for c in ("model", "n", *SEEDS_METRICS.values())} for r in table.values()])
    if pairs.exists():
        lines += ["Paired on each seed, T-RecX minus the ablation (points; curve: mean gain over the shared "
                  "MFLOPs range, the paper's Fig 6; final: the final exit's accuracy):", "",
                  *markdown([{"comparison": r["model"], "metric": r["metric"], "n": int(r["n"]),
                         "mean [95% interval]": f"{r['mean']:+.2f} [{r['ci95_low']:+.2f}, {r['ci95_high']:+.2f}]",
                         "verdict": r["verdict"]} for r in read_csv(pairs)])]
    return lines


def label(out: Path, task: str) -> str:
    """How titles name a results folder: the task, with the folder's name when it is another (a seed's)."""
    return out.name if not task or out.name == task else f"{task} ({out.name})"


def comparison_md(out: Path, models: list[str], baseline: str, task: str = "",
                  costs: list[dict] | None = None) -> str:
    """comparison.md; `costs` are `reporting.compute`'s rows for its training-cost section."""
    base, task = load(out, baseline), task or out.name
    lines = [f"# T-RecX vs prior early-exit methods: {label(out, task)}", "",
             f"Generated by `python -m common compare --task {task}` (also run by every test.py) "
             "from the `*/summary.json` files in this folder.",
             "rho is chosen on the validation split (the cheapest rho whose validation accuracy is within the "
             "allowed drop of the baseline's); FLOPs and accuracy are measured on the test split.", ""]
    if base:
        lines += [f"Baseline `{baseline}`: {100 * base.accuracy():.2f}% test accuracy, {base.mflops():.3f} MFLOPs.", ""]
    cols = ["model", "params", "final-exit test acc", *(f"MFLOPs at {d} pt (cut, test acc, vs baseline)"
                                                       for d in (1, 2, 3))]
    summaries = {m: load(out, m) for m in models}
    rows = []
    for m, s in summaries.items():
        if s is None:
            continue
        cells = []
        for t in s.tradeoffs:
            # the sweep's own test drop against the baseline (0.0 - x: an exact tie reads +0.00, not -0.00)
            vs = "" if not base or not t.reached else f", {0.0 - t.test_drop_points:+.2f} pt"
            cells.append("no rho qualifies" if not t.reached else f"{t.test_mflops:.3f} "
                         f"({t.test_flops_reduction_pct:.1f}%, {100 * t.test_accuracy:.2f}%{vs})")
        rows.append(dict(zip(cols, [m, f"{s.params:,}", f"{100 * s.accuracy():.2f}%", *cells], strict=False)))
    lines += markdown(rows, cols, blank=False)
    missing = [m for m, s in summaries.items() if s is None]
    lines += ["", "A negative cut means the method costs more than the baseline at that accuracy. The allowed drop "
              "holds on validation, where rho is chosen; `vs baseline` says what it became on the test split."]
    lines += guaranteed_md({m: s for m, s in summaries.items() if s is not None and s.guaranteed})
    if missing:
        lines += ["", f"Not trained yet: {', '.join(missing)}."]
    t1, t2 = table1_vs_paper(out, task, baseline), table2_vs_paper(out, task)
    if t1 or t2:
        lines += ["", "## Beside the paper", "", PAPER_NOTE, ""]
    if t1:
        lines += ["Table 1 (test split; rho chosen on validation):", "", *markdown(t1)]
    if t2:
        lines += ["Table 2 (standalone test accuracy of every exit in order, the final exit last, %):", "",
                  *markdown(t2)]
    lines += seeds_md(out)
    lines += cost_md(costs or [])
    return "\n".join(lines) + "\n"


def cost_md(rows: list[dict]) -> list[str]:
    """The training cost of every shipped model (`reporting.compute`), as a section of comparison.md."""
    rows = [r for r in rows if r["cpu_hours"] is not None]
    if not rows:
        return []
    return ["## Training cost (`training_cost.csv`, from each shipped model's log)", "",
            "CPU hours: the epochs' wall time times the run's threads (epochs of a stopped process counted "
            "at the run's median). A warm-started model counts its own epochs only; a copy of another "
            f"shipped model (`copy_of`) is not counted twice. In all: {compute.total_cpu_hours(rows):.1f} CPU hours.",
            "", *markdown([{k: r[k] for k in ("model", "epochs", "threads", "cpu_hours", "paused_epochs",
                                                  "init_from", "copy_of")} for r in rows])]


def write(out: Path, baseline: str, task: str = "", models_dir: Path | None = None) -> list[str]:
    """comparison.md and the paper tables for the models of `out` among T-RecX and the prior methods;
    Fig 7 and table2.csv when a prior method was tested. `task` defaults to the folder's name; the
    training cost is read from the logs in `models_dir` (default: pretrained/<task>)."""
    task = task or out.name
    models = [m for m in (*TRECX, *METHODS) if exists(out, m)]
    base = load(out, baseline)
    if any(m in METHODS for m in models):
        curves = {m: out / m / "benefit_curve_test.csv" for m in models
                  if (out / m / "benefit_curve_test.csv").exists()}
        point = (base.mflops(), base.accuracy()) if base else None
        plots.benefit_curves(curves, out / "fig7_prior_methods.png", baseline=point, baseline_label=baseline,
                             title=f"{label(out, task)}: test split", logx=True)
        write_csv(out / "table2.csv", table2(out, [baseline, *models]))
    for name, rows in (("table1_paper.csv", table1_vs_paper(out, task, baseline)),
                       ("table2_paper.csv", table2_vs_paper(out, task))):
        if rows:
            write_csv(out / name, rows)
    shown = [*models, *(m for m in METHODS if m not in models)] if any(m in METHODS for m in models) else models
    costs = compute.training_cost(models_dir or paths.pretrained_dir(task))
    write_csv(out / "training_cost.csv", costs)
    files.write_text(out / "comparison.md", comparison_md(out, shown, baseline, task, costs))
    return models
