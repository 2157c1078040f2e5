"""A task's test run: every model's outputs, curves and trade-offs, Table 1, figures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from common import compare, files, paths, tasks
from common.config import parse, save_run_info
from common.errors import ModelFileError
from common.evaluation import plots
from common.evaluation.evaluate import cached_outputs, evaluate_variant, read_csv, write_csv
from common.models import prior

log = logging.getLogger("trecx.test")


@dataclass
class TestConfig:
    """Options of every task's test.py."""

    models_dir: str = ""  # folder of <variant>.keras files; "" = pretrained/<task>
    out_dir: str = ""  # results folder; "" = results/<task>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    refresh: bool = False  # recompute cached outputs.npz


def main(task_name: str, argv: list[str] | None, doc: str = "") -> list[dict]:
    """What every task's test.py does: parse options, load the models of a folder (plus the MLPerf
    reference when the task has one, as `mlperf_reference`), load val/test data once, evaluate, write
    results and split.json; then the task's own additions (`Task.extra`)."""
    cfg = parse(TestConfig, {"default": TestConfig()}, argv, description=doc)
    task = tasks.get(task_name)
    models_dir = Path(cfg.models_dir or paths.pretrained_dir(task.name))
    out = Path(cfg.out_dir or paths.results_dir() / task.name)
    models = ({"mlperf_reference": task.reference()} if task.reference else {}) | load_models(models_dir)
    if task.baseline not in models:
        raise ModelFileError(f"no {task.baseline}.keras in {models_dir}: train one with "
                             f"python -m {task.name}.train --variant {task.baseline} --publish true")
    data = task.load(cfg.data_dir, cfg.split_seed)
    files.write_json(out / "split.json", data.info | {"files": data.files})
    rows = run(models, data.splits, out, task.baseline, task.curves, violin=task.violin, config=cfg, info=data.info,
               task=task.name, models_dir=models_dir)
    if task.extra is not None:
        task.extra(models, out, data, models_dir)
    return rows


def load_models(models_dir: Path) -> dict[str, keras.Model]:
    """Every `<variant>.keras` of a folder, keyed by variant name."""
    if not models_dir.is_dir():
        raise ModelFileError(f"--models-dir: {models_dir} is not a folder")
    return {p.stem: files.load_model(p) for p in sorted(models_dir.glob("*.keras"))}


def run(models: dict[str, keras.Model], data: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path,
        baseline: str, curves: dict[str, list[str]] | None = None, violin: tuple[str, str] | None = None,
        config=None, info: dict | None = None, task: str = "", models_dir: Path | None = None) -> list[dict]:
    """Evaluate `models` on data["val"] and data["test"] into `out_dir`; `baseline` names the model
    that the trade-offs are measured against. `curves` maps a figure file to the variants it shows;
    `violin` names two variants whose early-exit confidence is compared; `task` (default: the folder's
    name) picks the paper's numbers beside ours; `models_dir` holds the models' training logs (default:
    pretrained/<task>), read for the training cost."""
    if baseline not in models:
        raise ValueError(f"baseline model '{baseline}' not among {sorted(models)}")
    outs, summaries = {}, {}
    order = [baseline] + [n for n in models if n != baseline]
    for name in order:
        refresh = bool(getattr(config, "refresh", False))
        outs[name] = cached_outputs(models[name], data, out_dir / name / "outputs.npz", refresh=refresh)
        base = None
        if name != baseline:
            b = summaries[baseline]
            base = {"val_accuracy": b["standalone"]["final"]["val"], "test_accuracy": b["standalone"]["final"]["test"],
                    "mflops": b["exit_costs"]["final"]["mflops"]}
        summaries[name] = evaluate_variant(models[name], outs[name], out_dir / name, baseline=base)
        log.info(f"{name}: " + ", ".join(f"{e} {100 * a['test']:.2f}%" for e, a in
                                         summaries[name]["standalone"].items()))
    rows = [table_row(n, summaries[n]) for n in order]
    write_csv(out_dir / "table1.csv", rows)
    b = summaries[baseline]
    point = (b["exit_costs"]["final"]["mflops"], b["standalone"]["final"]["test"])
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


def table_row(name: str, s: dict) -> dict:
    """One Table 1 row: parameters, MFLOPs, standalone accuracy of every exit, the 1/2/3-point trade-offs."""
    row = {"model": name, "params": s["params"], "mflops_full": s["exit_costs"]["final"]["mflops"],
           "mflops_early_exit": s["exit_costs"].get("early_exit", {}).get("mflops"),
           "early_exit_test_accuracy": s["standalone"].get("early_exit", {}).get("test"),
           "final_val_accuracy": s["standalone"]["final"]["val"],
           "final_test_accuracy": s["standalone"]["final"]["test"]}
    for t in s.get("tradeoffs", []):
        d = int(t["drop_points"])
        row |= {f"rho_{d}pt": t["rho"], f"test_mflops_{d}pt": t["test_mflops"],
                f"test_flops_reduction_pct_{d}pt": t["test_flops_reduction_pct"],
                f"test_accuracy_{d}pt": t["test_accuracy"]}
    return row
