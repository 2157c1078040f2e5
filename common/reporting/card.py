"""Model cards generated from the results files (`python -m common model_card --task TASK` writes them).

Reads results/<task>/ (split.json, table1.csv, <variant>/summary.json, deploy/<variant>/deploy.json
and benchmark.json) and pretrained/<task>/<variant>.config.json and .log.csv, and writes
results/<task>/MODEL_CARD.md: one row per shipped variant (`trecx`, and `trecx_plus` where a design of
ours measured better), then each variant's card. Nothing in it is typed by hand; a missing file leaves
its section out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import paths, records, tasks
from ..data.sources import is_local_subset
from ..errors import ModelFileError
from ..evaluation.summary import FILE, Summary, load
from ..files import read_csv
from . import signals as signal_report
from .board import BOARD, firmware_runs, read_benchmark
from .compare import SEEDS_METRICS, in_percent, seed_split_note
from .tables import markdown


def data_note(info: dict) -> str:
    """Where the data came from, and whether it is the full dataset."""
    counts = ", ".join(f"{k} {v}" for k, v in info.get("counts", {}).items())
    local = is_local_subset(info)  # the project's ../shared copies
    return (f"{info.get('dataset')} from `{Path(str(info.get('source'))).name}` ({counts}"
            + (f"; test split {info['test_split']}" if "test_split" in info else "") + ")"
            + (": the copy in ../shared, a subset or re-encoding of the full dataset (see its SOURCE.txt), "
               "so numbers on the full test set will differ." if local else "."))


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}%"


def _ci(p: float, n: int) -> str:
    """Half-width of the normal-approximation 95% interval of an accuracy on n samples, in points."""
    return f"±{196 * math.sqrt(max(p * (1 - p), 1e-12) / n):.1f}"


def _model(task: str, variant: str, summary: Summary, split: dict) -> list[str]:
    lines = [f"# `{variant}`", "", "## Model", "",
             f"- File: `pretrained/{task}/{variant}.keras` (outputs `early_exit`, `final`: softmax probabilities).",
             f"- Parameters: {summary.params:,}.",
             "- MFLOPs to leave at each exit (cumulative, exit heads passed included): "
             + ", ".join(f"{e} {c.mflops:.3f}" for e, c in summary.exit_costs.items()) + "."]
    if split.get("classes"):
        lines.append(f"- Classes: {', '.join(map(str, split['classes']))}.")
    lines += ["", "## Data", "", f"- {data_note(split)}" if split else "- unknown (no split.json)",
              f"- Split seed {split.get('seed')}; the validation split chooses rho, the test split reports.", ""]
    return lines


OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD"}


def _training(task: str, variant: str, cfg: dict, pre: Path) -> list[str]:
    if not cfg:
        return []
    log = read_csv(pre / f"{variant}.log.csv") if (pre / f"{variant}.log.csv").exists() else []
    # the rule common.train applies: lowest validation loss (validation accuracy for one exit), over
    # the joint phase alone with keep_joint
    first = cfg.get("head_epochs", 0) if cfg.get("keep_joint") else 0
    kept = [r for r in log if r["epoch"] >= first]
    several = any(k.endswith("_loss") and k not in ("loss", "val_loss") for k in (log[0] if log else {}))
    key, sign, what = (("val_loss", 1, "lowest validation loss") if several
                       else ("val_accuracy", -1, "highest validation accuracy"))
    best = min(kept, key=lambda r: sign * r.get(key, sign * math.inf)) if kept else None
    what += " of the joint phase" if first else ""
    init = Path(cfg["init_from"]).name if cfg.get("init_from") else "random initialisation"
    optimizer = OPTIMIZER_NAMES.get(cfg.get("optimizer", "adam"), cfg.get("optimizer"))
    return ["## Training", "",
            f"- Start: {init}. {cfg.get('head_epochs', 0)} head-only epochs (backbone frozen, lr "
            f"{cfg.get('head_lr')}), then joint training to epoch {cfg.get('epochs')} ({optimizer}, "
            f"lr {cfg.get('lr')}, {cfg.get('lr_schedule')} schedule, batch {cfg.get('batch_size')}), "
            "on this machine's CPU.",
            f"- Epochs logged: {len(log)}; the shipped weights are those of epoch {int(best['epoch']) + 1} "
            f"({what})." if best else "- No training log.",
            f"- Full config: `pretrained/{task}/{variant}.config.json`.", ""]


def _accuracy(summary: Summary, n_test: int) -> list[str]:
    rows = [{"exit": e, "validation": _pct(a["val"]), "test": f"{_pct(a['test'])} "
             f"{_ci(a['test'], n_test) if n_test else ''}"} for e, a in summary.standalone.items()]
    if b := summary.baseline:
        rows.append({"exit": "baseline (full model)", "validation": _pct(b.val_accuracy),
                     "test": _pct(b.test_accuracy)})
    cols = ["allowed drop", "rho", "test accuracy", "test MFLOPs", "FLOPs cut vs baseline", "test drop"]
    lines = ["## Accuracy (float, Keras)", "", *markdown(rows),
             f"Test accuracies carry a 95% interval of about the ± shown (points; {n_test} test samples).", "",
             "## Early exit (float): rho chosen on validation, measured on test", "",
             *markdown(_trade_rows(summary.tradeoffs), cols, blank=False)]
    if summary.guaranteed:
        g = summary.guarantee
        lines += ["", f"Certified (rho certified by Learn-then-Test on {g.get('calibrated_on')}, {g.get('method')} "
                  f"p-values: with probability >= 1 - {g.get('delta')} over that split's draw, the expected drop "
                  "against the baseline on its distribution is within the allowed one; "
                  "`common/evaluation/calibrate.py`), measured on test:", "",
                  *markdown(_trade_rows(summary.guaranteed), cols, blank=False)]
        uncertified = [f"{t.drop_points} pt" for t in summary.guaranteed if not t.reached]
        if uncertified:
            lines += ["", f"No rho is certified for {', '.join(uncertified)}: deploy the full model there."]
    return lines


def _trade_rows(tradeoffs) -> list[dict]:
    return [{"allowed drop": f"{t.drop_points} pt", "rho": f"{t.rho:.2f}", "test accuracy": _pct(t.test_accuracy),
             "test MFLOPs": f"{t.test_mflops:.3f}", "FLOPs cut vs baseline": f"{t.test_flops_reduction_pct:.1f}%",
             "test drop": f"{t.test_drop_points:.2f} pt"} for t in tradeoffs if t.reached]


def _deployment(task: str, variant: str, deploy: dict | None) -> list[str]:
    if not deploy:
        return []
    acc = deploy["accuracy"]["test"]
    lines = ["", "## int8 deployment", "",
             f"Full-integer int8 TFLite split at the exit (`results/{task}/deploy/{variant}/`), "
             f"int8 quantization set on {deploy['int8_quantization']}; every int8 number below is of the "
             "tflite-micro interpreter's outputs (the kernels the firmware is checked against).",
             "", *markdown([{"exit": k, "float test": _pct(acc["keras_float"][k]), "int8 test": _pct(acc["int8"][k])}
                           for k in acc["int8"]], ["exit", "float test", "int8 test"])]
    lines += [f"- Flash (int8 .tflite bytes): {' + '.join(deploy.get('segments', ['head', 'tail']))} "
              f"{deploy['flash_bytes_int8'][variant]:,}, baseline {deploy['flash_bytes_int8']['baseline']:,}.",
              "- tflite-micro tensor arena (bytes, each graph apart): "
              + ", ".join(f"{k} {v:,}" for k, v in deploy["arena_bytes"].items()) + ".",
              f"- {threshold_line(deploy['threshold'])}"]
    return lines


def threshold_line(t: dict) -> str:
    """What a deploy, benchmark or firmware record's threshold is: its rule, what it promises (in the record's own
    words), and its test drop with a 95% interval."""
    rhos = "none (the full network runs)" if t["rhos"] is None else ", ".join(f"{r:.2f}" for r in t["rhos"])
    test = t["test"]
    ci = test.get("drop_points_ci95")
    over = " (over the budget)" if test["drop_points"] > t["budget_points"] else ""
    return (f"Deployed threshold(s) {rhos}: rule `{t['rule']}`, {t['budget_points']}-point budget against "
            f"{t['against']}, chosen on {t.get('chosen_on', '?')}. Guarantee: {t.get('guarantee', 'none')}. On the "
            f"test split: {test['drop_points']:.2f} points below the baseline{over}"
            + (f" (95% interval {ci[0]:.2f} to {ci[1]:.2f})" if ci else "")
            + f", {test['flops_cut_pct']:.1f}% FLOPs cut.")


def _latency(bench: dict | None, runs: dict[str, dict]) -> list[str]:
    if not bench:
        return _mcu(runs)
    stat = next(iter(bench[be]["latency_statistic"] for be in bench.get("backends", {})), "")
    subset = bench.get("subset", "all")
    rows = [{"backend": be, "baseline µs": f"{r['latency_us']['baseline']:.0f}",
             "early exit µs": f"{r['latency_us']['early_exit']:.0f}", "exit rate": f"{r['exit_rate']:.2f}",
             "latency cut": f"{r['latency_cut_pct']:.1f}%", "FLOPs cut": f"{r['flops_cut_pct']:.1f}%",
             "accuracy (EE runtime)": _pct(r["accuracy"]["early_exit"]) if "accuracy" in r else "(timed only)"}
            for be in bench.get("backends", {}) for r in [bench[be]]]
    lines = ["", f"## Latency (int8, batch 1, {bench['test_samples']} test samples ({subset}), {stat})", "",
             *markdown(rows, ["backend", "baseline µs", "early exit µs", "exit rate", "latency cut", "FLOPs cut",
                              "accuracy (EE runtime)"], blank=False)]
    m = bench.get("machine")
    load = ([f"- Machine: {m['cpus']} CPUs, 1-minute load {m['load_1min_before']} before and "
             f"{m['load_1min_after']} after; {m['note']}."] if m else [])
    return [*lines, "", *[f"- {be}: {d}" for be, d in bench.get("backends", {}).items()], *load, *_mcu(runs)]


def _mcu(runs: dict[str, dict]) -> list[str]:
    """The early-exit firmware on emulated Cortex-M boards (`python -m common firmware`), when it was run."""
    if not runs:
        return []
    rows = [{"board": f"{r['cpu']}/{r['kernels']} ({r['board']})", "samples": r["samples"],
             "bit-exact": "yes" if r["bit_exact"] else "NO",
             "baseline M instr.": f"{r['instructions']['baseline'] / 1e6:.2f}",
             "early exit M instr.": f"{r['instructions']['early_exit_firmware'] / 1e6:.2f}",
             "exit rate": f"{r['exit_rate']:.2f}", "instruction cut": f"{r['instruction_cut_pct']:.1f}%",
             "FLOPs cut": f"{r['flops_cut_pct']:.1f}%", "flash": f"{r['flash_bytes'] / 1024:.0f} KiB",
             "RAM (baseline)": f"{r['ram_bytes'] / 1024:.1f} KiB"
                               + (f" ({r['baseline_ram_bytes'] / 1024:.1f})" if r.get("baseline_ram_bytes") else ""),
             "instr./MAC head / tail": "/".join(f"{v:.1f}" if v else "–" for v in (
                 r.get("instructions_per_mac", {}).get(g) for g in ("head", "tail")))} for r in runs.values()]
    cols = list(rows[0])
    counted = dict.fromkeys((r["board"], r["counted_as"]) for r in runs.values())
    return ["", "## On a Cortex-M (TFLite Micro firmware in QEMU, instructions per test sample)", "",
            *markdown(rows, cols, blank=False), "",
            *[f"- {board}: counted as {c}." for board, c in counted],
            "- Bit-exact: the firmware and the Python int8 runtime on TFLM agree on "
            f"{next(iter(runs.values())).get('compared', 'each sample exit and class')} "
            "(docs/deployment.md, \"On a Cortex-M\"). Instructions: release builds, at the deployed threshold(s) "
            "above; RAM: static RAM with the one tensor arena sized to what the board used, beside the baseline "
            "firmware's built the same way. instr./MAC: over the convolution and dense layers of the head "
            "and of the tail (where the tail's layers cost fewer instructions per MAC, the instruction cut trails "
            "the FLOPs cut)."]


def _limits(split: dict, n_test: int, summary: Summary, deploy, bench: dict | None,
            runs: dict[str, dict]) -> list[str]:
    lines = ["", "## Known limits", ""]
    t = summary.tradeoffs[0] if summary.tradeoffs else None
    if t and t.test_drop_points is not None and t.test_drop_points > t.drop_points:
        lines.append(f"- The rho chosen on validation for a {t.drop_points}-point drop landed "
                     f"{t.test_drop_points:.2f} points below the baseline on the test split: validation and "
                     "test disagree by more than the allowed drop; re-choose rho on more validation data.")
    fw = runs.get(BOARD, {})
    if fw.get("baseline_ram_bytes") and fw["ram_bytes"] > fw["baseline_ram_bytes"]:
        lines.append(f"- The early-exit firmware needs {fw['ram_bytes']:,} bytes of RAM, "
                     f"{100 * (fw['ram_bytes'] / fw['baseline_ram_bytes'] - 1):.0f}% more than the baseline "
                     f"firmware's {fw['baseline_ram_bytes']:,} (one arena for every segment): the exit adds RAM on a "
                     "microcontroller while it saves compute.")
    if split and is_local_subset(split):
        lines.append("- Trained and measured on a local subset or re-encoding of the dataset (see Data); "
                     "accuracy on the official full test set will differ.")
    if n_test and n_test < 2000:
        lines.append(f"- The test split has {n_test} samples: differences under about "
                     f"{_ci(0.9, n_test)[1:]} points are within noise.")
    if bench and "litert" in bench and not bench["litert"]["target_latency_cut_ge_0.8x_flops_cut"]:
        lines.append("- On a desktop CPU (LiteRT with XNNPACK) per-invoke overheads dominate these tiny graphs, "
                     "so the measured latency cut is well below the FLOPs cut.")
    t = (deploy or {}).get("threshold") or {}
    if t.get("rhos") is None and t:
        lines.append(f"- Nothing could be certified for a {t['budget_points']}-point budget on the int8 calibration "
                     "outputs: the deployed firmware runs the full network.")
    lines.append("- The confidence threshold trades accuracy for compute; certify it again on your own data "
                 "(calibrate_exit on the int8 graphs) if your input distribution differs.")
    return lines


def card(task: str, variant: str = "trecx", results: Path | None = None, pretrained: Path | None = None) -> str:
    """The model card of `variant`, from a task's results folder and its shipped config and log."""
    res = results or paths.results_dir() / task
    pre = pretrained or paths.pretrained_dir(task)
    summary = load(res, variant)
    if summary is None:
        raise ModelFileError(f"{res / variant / FILE} not found: run python -m {task}.test first")
    split, cfg = _json(res / "split.json") or {}, _json(pre / f"{variant}.config.json") or {}
    folder = res / "deploy" / variant
    deploy = records.read(folder, variant) if (folder / records.DEPLOY).exists() else None
    if deploy is not None and (pre / f"{variant}.keras").exists():
        records.check_model(deploy, pre / f"{variant}.keras")  # a deployment of an earlier model: refused
    bench = read_benchmark(folder)
    runs = firmware_runs(folder) if deploy is not None else {}
    n_test = split.get("counts", {}).get("test", 0)
    origin = ([f"`{variant}` is `{cfg['shipped_from']}`, chosen by {cfg.get('chosen_by', '?')} "
               f"(`pretrained/{task}/{cfg['shipped_from']}.keras` is the same model).", ""]
              if cfg.get("shipped_from") else [])
    lines = [*_model(task, variant, summary, split), *origin, *_training(task, variant, cfg, pre),
             *_accuracy(summary, n_test), *signal_report.card_lines(res, variant),
             *_deployment(task, variant, deploy), *_latency(bench, runs),
             *_limits(split, n_test, summary, deploy, bench, runs)]
    return "\n".join(lines) + "\n"


def overview(task: str, variants: list[str], results: Path | None = None) -> str:
    """The heading, and one row per variant: its size, exits and trade-off (from table1.csv)."""
    res = results or paths.results_dir() / task
    table = {r["model"]: r for r in read_csv(res / "table1.csv")} if (res / "table1.csv").exists() else {}
    lines = [f"# Model card: {task}", "",
             f"Generated by `python -m common model_card --task {task}` from `results/{task}/` and "
             f"`pretrained/{task}/`; do not edit by hand.", ""]
    rows = []
    for v in variants:
        r = table.get(v, {})
        cut, params, mflops = r.get("test_flops_reduction_pct_1pt"), r.get("params"), r.get("mflops_full")
        rows.append({"model": f"`{v}`", "params": "" if params is None else f"{int(params):,}",
                     "MFLOPs": "" if mflops is None else f"{mflops:.3f}",
                     "final (test)": _pct(r.get("final_test_accuracy")),
                     "early exit (test)": _pct(r.get("early_exit_test_accuracy")),
                     "FLOPs cut at <= 1 pt (test)": "" if cut is None else f"{cut:.1f}%"})
    lines += markdown(rows, ["model", "params", "MFLOPs", "final (test)", "early exit (test)",
                             "FLOPs cut at <= 1 pt (test)"])
    lines += ["rho is chosen on the validation split, then measured on the test split.", ""]
    return "\n".join([*lines, *_seed_spread(res / "seeds" / "summary.csv", [tasks.get(task).baseline, *variants])])


def _seed_spread(summary: Path, models: list[str]) -> list[str]:
    """How much the headline numbers move between training runs (the summary.csv of `python -m common seeds`)."""
    rows = ([r for r in read_csv(summary) if r["model"] in models and r["metric"] in SEEDS_METRICS]
            if summary.exists() else [])
    if not rows:
        return []
    def fmt(metric: str, v: float) -> str:
        return f"{in_percent(metric, v):.{1 if metric.endswith('pct_1pt') else 2}f}%"

    lines = [f"Across runs (`{summary.parent.name}/{summary.name}`, written by `python -m common seeds`: the same "
             "variants trained again under other seeds, or data splits where it varied them; the shipped model may be "
             "one of them): each run's value on its test split, then the mean and its 95% t-interval."
             + seed_split_note(summary.parent, summary.parent.parent / "split.json"), ""]
    table = [{"model": f"`{r['model']}`", "number": SEEDS_METRICS[m := r["metric"]],
              "runs": " / ".join(fmt(m, float(v)) for v in str(r["values"]).split()),
              "mean [95% interval]": f"{fmt(m, r['mean'])} [{fmt(m, r['ci95_low'])}, {fmt(m, r['ci95_high'])}]"}
             for r in sorted(rows, key=lambda r: (models.index(r["model"]), list(SEEDS_METRICS).index(r["metric"])))]
    return [*lines, *markdown(table)]
