"""A task's test run over loaded models: every model's outputs, curves and trade-offs, Table 1, figures
(the `<task>.test` command loads the models and data and calls `test_models`)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from ..config import save_run_info
from ..evaluation import plots
from ..evaluation.evaluate import cached_outputs, evaluate_variant
from ..evaluation.summary import Summary
from ..files import read_csv, write_csv
from ..models import prior
from . import compare, multi_exit

log = logging.getLogger("trecx.test")


def test_models(models: dict[str, keras.Model], data: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path,
                baseline: str, curves: dict[str, list[str]] | None = None, violin: tuple[str, str] | None = None,
                config=None, info: dict | None = None, task: str = "", models_dir: Path | None = None) -> list[dict]:
    """Evaluate `models` on data["val"] and data["test"] into `out_dir`; `baseline` names the model
    that the trade-offs are measured against. `curves` maps a figure file to the variants it shows;
    `violin` names two variants whose early-exit confidence is compared; `task` (default: the folder's
    name) picks the paper's numbers beside ours; `models_dir` holds the models' training logs (default:
    pretrained/<task>), read for the training cost."""
    if baseline not in models:
        raise ValueError(f"baseline model '{baseline}' not among {sorted(models)}")
    outs: dict[str, dict] = {}
    summaries: dict[str, Summary] = {}
    order = [baseline] + [n for n in models if n != baseline]
    for name in order:
        refresh = bool(getattr(config, "refresh", False))
        outs[name] = cached_outputs(models[name], data, out_dir / name / "outputs.npz", refresh=refresh)
        base = right = None
        if name != baseline:
            b = summaries[baseline]
            base = {"val_accuracy": b.accuracy("final", "val"), "test_accuracy": b.accuracy("final", "test"),
                    "mflops": b.mflops("final")}
            right = {s: o["final"].argmax(axis=1) == o["labels"] for s, o in outs[baseline].items()}
        summaries[name] = evaluate_variant(models[name], outs[name], out_dir / name, baseline=base,
                                           baseline_right=right)
        log.info(f"{name}: " + ", ".join(f"{e} {100 * a['test']:.2f}%" for e, a in
                                         summaries[name].standalone.items()))
    rows = [table_row(n, summaries[n]) for n in order]
    write_csv(out_dir / "table1.csv", rows)
    b = summaries[baseline]
    point = (b.mflops("final"), b.accuracy("final", "test"))
    title = f"{compare.label(out_dir, task)}: test split"
    for fig, names in (curves or {}).items():
        shown = {n: out_dir / n / "benefit_curve_test.csv" for n in names if n in summaries and
                 (out_dir / n / "benefit_curve_test.csv").exists()}
        if shown:
            plots.benefit_curves(shown, out_dir / fig, baseline=point, baseline_label=baseline,
                                 title=title)
    if violin and all(v in outs for v in violin):
        conf = {v: outs[v]["test"]["early_exit"].max(axis=1) for v in violin}
        plots.confidence_violin(conf, out_dir / "fig5_ee_confidence_violin.png", title=title)
    multi_exit.write(out_dir, summaries, baseline, title)  # several early exits against one, same budget
    if any(m in summaries for m in (*compare.TRECX, *prior.METHODS)):
        compare.write(out_dir, baseline, task, models_dir)  # beside the paper; Fig 7 and Table 2 with prior methods
    save_run_info(out_dir, config or {}, {"data": info or {}, "baseline": baseline, "models": order})
    return rows


def aggregate(tables: dict[str, Path], out: Path, shared_only: bool = False) -> list[dict]:
    """Mean and 95% t-interval over several runs' table1.csv (e.g. one per data split), per model
    and numeric column; written to `out` (CSV) with every run's value. `shared_only` keeps only the
    models that every run has (no one-run rows with an empty interval)."""
    from scipy import stats

    runs = {k: {r["model"]: r for r in read_csv(p)} for k, p in tables.items()}
    rows = []
    models = dict.fromkeys(m for t in runs.values() for m in t
                           if not shared_only or all(m in other for other in runs.values()))
    for model in models:
        cols = dict.fromkeys(c for t in runs.values() if model in t for c in t[model])
        for col in cols:
            vals = [t[model][col] for t in runs.values() if model in t and isinstance(t[model].get(col), float)]
            if col == "model" or not vals:
                continue
            v = np.array(vals)
            half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
            rows.append({"model": model, "metric": col, "n": len(v), "mean": float(v.mean()),
                         "ci95_low": float(v.mean()) - half, "ci95_high": float(v.mean()) + half,
                         "values": " ".join(f"{x:.6g}" for x in v)})
    write_csv(out, rows)
    return rows


def table_row(name: str, s: Summary) -> dict:
    """One Table 1 row: parameters, MFLOPs, standalone accuracy of every exit, the 1/2/3-point trade-offs."""
    early = "early_exit" in s.standalone
    row = {"model": name, "params": s.params, "mflops_full": s.mflops("final"),
           "mflops_early_exit": s.mflops("early_exit") if "early_exit" in s.exit_costs else None,
           "early_exit_test_accuracy": s.accuracy("early_exit") if early else None,
           "early_exit_val_accuracy": s.accuracy("early_exit", "val") if early else None,
           "final_val_accuracy": s.accuracy("final", "val"), "final_test_accuracy": s.accuracy("final")}
    for t in s.tradeoffs:
        d = int(t.drop_points)
        row |= {f"rho_{d}pt": t.rho, f"test_mflops_{d}pt": t.test_mflops,
                f"val_flops_reduction_pct_{d}pt": s.val_cut(d),
                f"test_flops_reduction_pct_{d}pt": t.test_flops_reduction_pct, f"test_accuracy_{d}pt": t.test_accuracy}
    for t in s.tradeoffs:  # what the validation-chosen rho gave on test, beside the guaranteed rho
        row[f"test_drop_points_{int(t.drop_points)}pt"] = t.test_drop_points
    for t in s.guaranteed:
        d = int(t.drop_points)
        row |= {f"guaranteed_rho_{d}pt": t.rho, f"guaranteed_test_flops_reduction_pct_{d}pt":
                t.test_flops_reduction_pct, f"guaranteed_test_drop_points_{d}pt": t.test_drop_points}
    for t in s.vector:  # a threshold per early exit (several early exits), chosen on validation
        d = int(t.drop_points)
        row |= {f"vector_rhos_{d}pt": " ".join(f"{r:g}" for r in t.rhos) if t.rhos else None,
                f"vector_val_flops_reduction_pct_{d}pt": s.val_cut(d, vector=True),
                f"vector_test_flops_reduction_pct_{d}pt": t.test_flops_reduction_pct,
                f"vector_test_accuracy_{d}pt": t.test_accuracy, f"vector_test_drop_points_{d}pt": t.test_drop_points}
    return row
