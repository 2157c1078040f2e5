"""Every firmware record (`results/<task>/deploy/<variant>/firmware_<cpu>_<kernels>.json`, written by the
`firmware` command) in one table and one figure: `results/firmware.csv` and `results/firmware.png`, the MCU
instruction cut beside the FLOPs cut and the x86 TFLM latency cut of the same deployment; and the goal of
each task's best shipped early exit on the Cortex-M4 with CMSIS-NN (`results/firmware_targets.csv`): an
instruction cut of at least GOAL x its FLOPs cut, or the layers that keep it lower; beside it, the exit-study
cell whose firmware cut the most instructions (on the cell's own firmware samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import files, records
from ..errors import ModelFileError
from ..files import write_csv
from .targets import row

CSV, FIGURE, TARGETS, DEPLOY_TARGETS = ("firmware.csv", "firmware.png", "firmware_targets.csv",
                                       "firmware_deploy_targets.csv")
# An exit only saves the tail, whose layers may cost fewer instructions per MAC than the head's: the best shipped
# early exit per task should still keep at least this share of its FLOPs cut as an instruction cut.
GOAL = 0.8  # instruction cut / FLOPs cut
BOARD = "cortex-m4_cmsis_nn"  # what the goal is judged on: the kernels a Cortex-M deployment uses


def read_benchmark(folder: Path) -> dict | None:
    """A deployment's benchmark.json (None when there is none), refused in one line when it was measured on
    another deployment than the folder's deploy.json describes (`records.read_result`: its graphs, thresholds or
    model). Every reader (model cards, tables, the firmware command) takes it through here. A study cell's older
    deploy.json, without hashes, is matched by variant and thresholds."""
    bench, deploy = folder / "benchmark.json", folder / records.DEPLOY
    if not bench.exists():
        return None
    if deploy.exists() and "hashes" in (want := json.loads(deploy.read_text())):
        return records.read_result(bench, records.read(folder))
    got, want = json.loads(bench.read_text()), want if deploy.exists() else {}
    if (got.get("variant"), got.get("rhos")) != (want.get("variant"), want.get("rhos")):
        raise ModelFileError(f"{bench} was measured for {got.get('variant')} at rhos {got.get('rhos')}, but "
                             f"{deploy.name} deploys {want.get('variant')} at {want.get('rhos')}: rerun python -m "
                             f"common benchmark --task {got.get('task')} --variant {want.get('variant')}")
    return got


def read_firmware(path: Path) -> dict:
    """A firmware record of a deployment (`firmware_<cpu>_<kernels>.json`), refused in one line when it was run on
    another deployment than its folder's deploy.json describes."""
    return records.read_result(path, records.read(path.parent))


def firmware_records(results: Path, pattern: str = "*/deploy/*/firmware_*.json") -> list[dict]:
    """Every shipped deployment's firmware record under `results` matching `pattern`, each checked."""
    return [read_firmware(p) for p in sorted(results.glob(pattern))]


def firmware_runs(folder: Path) -> dict[str, dict]:
    """A deployment's firmware records by board and kernels ("cortex-m4_cmsis_nn": record), each checked."""
    return {p.stem.removeprefix("firmware_"): read_firmware(p) for p in sorted(folder.glob("firmware_*.json"))}


def val_cut(r: dict) -> float:
    """A firmware record's deployment's FLOPs cut on validation: what headlines and goals pick by (never test)."""
    return ((r.get("threshold") or {}).get("val") or {}).get("flops_cut_pct", float("-inf"))


def threshold(r: dict) -> dict:
    """How a firmware record's thresholds were chosen: rule, certified, rhos, budget, delta, test drop."""
    t = r.get("threshold") or {}
    return {"rule": t.get("rule", "validation (older record)"), "certified": bool(t.get("certified")),
            "rhos": " ".join(f"{v:.2f}" for v in t["rhos"]) if t.get("rhos") else "none (full network)",
            "budget_points": t.get("budget_points"), "delta": t.get("delta"),
            "test_drop_points": (t.get("test") or {}).get("drop_points")}


def rows(results: Path) -> list[dict]:
    out = []
    for path in sorted(results.glob("*/deploy/*/firmware_*.json")):
        r = read_firmware(path)
        tflm = (read_benchmark(path.parent) or {}).get("tflm", {})
        mlperf = r.get("mlperf_int8") or {}
        out.append({"task": r["task"], "variant": path.parent.name, "cpu": r["cpu"], "kernels": r["kernels"],
                    "pooling": r.get("pooling", "mean"), **threshold(r), "samples": r["samples"],
                    "subset": r["subset"], "bit_exact": r["bit_exact"],
                    "exit_rate": r["exit_rate"], "flops_cut_pct": r["flops_cut_pct"],
                    "instruction_cut_pct": r["instruction_cut_pct"],
                    "instruction_to_flops_cut_ratio": r["instruction_to_flops_cut_ratio"],
                    "x86_tflm_latency_cut_pct": tflm.get("latency_cut_pct"),
                    "tail_instruction_share": r.get("tail_instruction_share"),
                    "tail_flops_share": r.get("tail_flops_share"),
                    "ratio_ci95": _interval(r.get("instruction_to_flops_cut_ratio_ci95")),
                    "head_instructions_per_mac": r.get("instructions_per_mac", {}).get("head"),
                    "tail_instructions_per_mac": r.get("instructions_per_mac", {}).get("tail"),
                    "costliest_layers": "; ".join(r.get("costliest_layers", [])),
                    "baseline_instructions": r["instructions"]["baseline"],
                    "early_exit_instructions": r["instructions"]["early_exit_firmware"],
                    "profiler_overhead_pct": (r.get("profiler_overhead_pct") or {}).get("baseline"),
                    "mlperf_int8_instructions": mlperf.get("instructions"),
                    "baseline_vs_mlperf_int8_pct": r.get("baseline_vs_mlperf_int8_instructions_pct"),
                    "mlperf_tiny_published_cycles": r["mlperf_tiny_published_cycles"],
                    "implied_cycles_per_instruction": r["implied_cycles_per_instruction"],
                    "flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"],
                    "baseline_ram_bytes": r.get("baseline_ram_bytes"), "handover_bytes": r.get("handover_bytes"),
                    "ram_within_baseline_plus_handover": r.get("ram_within_baseline_plus_handover")})
    return out


def _interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def board_records(results: Path, task: str) -> list[dict]:
    """The task's firmware records of its deployments on BOARD (`results/<task>/deploy/<variant>/`)."""
    return firmware_records(results, f"{task}/deploy/*/firmware_{BOARD}.json")


def _certified(results: Path, task: str, exits: bool = False) -> list[dict]:
    """The task's firmware records on BOARD deployed by a certified rule (not the validation-chosen one); `exits`:
    only those whose certificate found thresholds (else the full network runs, and no exit is measured)."""
    return [r for r in board_records(results, task)
            if (r.get("threshold") or {}).get("rule", "validation") != "validation"
            and (not exits or r["threshold"].get("certified"))]


def targets(results: Path) -> list[dict]:
    """Per task, the shipped early exit deployed at a certified threshold with the largest FLOPs cut on validation
    (picked there, never on test), its instruction cut on BOARD against GOAL; when it misses, the layers that keep
    its cut lower and the exit-study cell (same board) with the largest instruction cut."""
    out = []
    for task in sorted({p.parts[-4] for p in results.glob(f"*/deploy/*/firmware_{BOARD}.json")}):
        recs = _certified(results, task, exits=True)
        if not recs:
            out.append(row(f"{task}: the best certified shipped early exit's instruction cut >= {GOAL:g} x its FLOPs "
                           "cut", task, None, GOAL, False, "no deployment has a certified threshold: every one runs "
                           "the full network (results/certificates.csv)", variant="", board=BOARD))
            continue
        best = max(recs, key=val_cut)
        ratio = best["instruction_to_flops_cut_ratio"]
        cells = [json.loads(p.read_text()) for p in sorted(results.glob(f"{task}/exit_study/*/firmware_{BOARD}.json"))]
        cell = max(cells, key=lambda c: c["instruction_cut_pct"]) if cells else None
        met = ratio is not None and ratio >= GOAL
        out.append(row(f"{task}: the best certified shipped early exit's instruction cut >= {GOAL:g} x its FLOPs cut",
                       task, ratio, GOAL, met, f"{best['variant']} on {BOARD}", variant=best["variant"], board=BOARD,
                       **threshold(best)) | {
                    "samples": best["samples"],
                    "bit_exact": best["bit_exact"], "flops_cut_pct": best["flops_cut_pct"],
                    "instruction_cut_pct": best["instruction_cut_pct"], "ratio": ratio,
                    "ratio_ci95": _interval(best.get("instruction_to_flops_cut_ratio_ci95")),
                    "head_instructions_per_mac": best.get("instructions_per_mac", {}).get("head"),
                    "tail_instructions_per_mac": best.get("instructions_per_mac", {}).get("tail"),
                    "kernels_keeping_it_lower": "" if met else "; ".join(best.get("costliest_layers", [])),
                    "exit_position_for_goal": "" if met else _position_for_goal(best),
                    "exit_study_best_cell": cell["variant"] if cell else "",
                    "exit_study_best_instruction_cut_pct": cell["instruction_cut_pct"] if cell else None,
                    "exit_study_best_flops_cut_pct": cell["flops_cut_pct"] if cell else None,
                    "exit_study_best_ratio": cell["instruction_to_flops_cut_ratio"] if cell else None})
    return out


# What the certified deployments on BOARD must reach, judged on their firmware records: (task, variant or "" for
# the task's best certified one (picked on validation), the least instruction cut %, the most test drop in points or
# None). IC's two-exit model, certified on the calibration split, must cut at least 28% of the baseline's
# instructions within the 1-point budget: a certificate is worth shipping only if the exits it allows still save
# that much on the board. KWS, whose 260 calibration clips cannot certify 1 point, is judged on its best certified
# deployment at whatever budget they can.
IC_CUT = 28.0  # % of the baseline's instructions IC's trecx2 must cut at a certified 1-point budget (above)
CUT_GOALS = (("image_classification", "trecx2", IC_CUT, 1.0), ("keyword_spotting", "", 20.0, None))
# |our baseline's release count / MLPerf Tiny's int8 file's - 1| in %: the same architecture must cost about the
# same on the board (KWS has none: its gap is MEAN against AVERAGE_POOL_2D, docs/deployment.md)
MLPERF_GOAL_PCT = {"image_classification": 5.0, "visual_wake_words": 5.0}


def deploy_targets(results: Path) -> list[dict]:
    """One row per goal of the certified deployments on BOARD: the instruction cut of IC's two-exit model and of
    KWS's best certified deployment, RAM within the baseline's plus the hand-over copy on every task, our
    baseline's release count against MLPerf Tiny's own int8 file, and every record bit-exact."""
    out = []
    tasks = sorted({p.parts[-4] for p in results.glob(f"*/deploy/*/firmware_{BOARD}.json")})
    for task, variant, cut, drop in CUT_GOALS:
        recs = [r for r in _certified(results, task, exits=True) if not variant or r["variant"] == variant]
        best = max(recs, key=val_cut, default=None)  # picked on validation, never on test
        t = threshold(best) if best else {}
        met = bool(best) and best["instruction_cut_pct"] >= cut and (
            drop is None or (t["test_drop_points"] is not None and t["test_drop_points"] <= drop))
        out.append(row(f"{task} {variant or 'best certified'}: instruction cut >= {cut:g}%"
                       + (f" with a test drop <= {drop:g} point" if drop is not None else ""), task,
                       best and best["instruction_cut_pct"], cut, met,
                       f"{best['variant']}: test drop {t['test_drop_points']:.2f} pt (rhos {t['rhos']}, {t['rule']})"
                       if best else "no certified threshold at its budget: the full network runs",
                       variant=best["variant"] if best else variant))
    for task in tasks:
        recs = _certified(results, task)
        worst = max(recs, key=lambda r: r["ram_bytes"] - r.get("baseline_ram_bytes", 0) - r.get("handover_bytes", 0),
                    default=None)
        if worst is None or "baseline_ram_bytes" not in worst:
            continue
        out.append(row(f"{task}: early-exit firmware RAM <= baseline firmware RAM + hand-over bytes (every certified "
                       "deployment)", task, worst["ram_bytes"], worst["baseline_ram_bytes"] + worst["handover_bytes"],
                       all(r.get("ram_within_baseline_plus_handover") for r in recs),
                       f"{worst['variant']}, the tightest: {worst['ram_bytes']:,} <= {worst['baseline_ram_bytes']:,} "
                       f"+ {worst['handover_bytes']:,}", variant=worst["variant"]))
    for task in tasks:
        recs = _certified(results, task)
        rec = next((r for r in recs if r.get("mlperf_int8") and r.get("pooling", "mean") == "mean"), None)
        if rec is None:
            continue
        pooled = next((r for r in recs if r.get("pooling") == "average_pool"), None)
        also = (f"; converted with AVERAGE_POOL_2D as MLPerf's ({pooled.get('folder', pooled['variant'])}): "
                f"{pooled['instructions']['baseline'] / 1e6:.3f} M "
                f"({pooled['baseline_vs_mlperf_int8_instructions_pct']:+.1f}%)") if pooled else ""
        gap, goal = rec["baseline_vs_mlperf_int8_instructions_pct"], MLPERF_GOAL_PCT.get(task)
        m = rec["mlperf_int8"]
        out.append(row(f"{task}: our baseline's release count "
                       + (f"within {goal:g}% of MLPerf Tiny's int8 file (absolute gap, %)" if goal
                          else "beside MLPerf Tiny's int8 file (the gap explained in docs/deployment.md)"),
                       task, abs(gap), goal,
                       abs(gap) <= goal if goal else None,
                       f"{rec['instructions']['baseline'] / 1e6:.3f} M vs {m['instructions'] / 1e6:.3f} M "
                       f"({gap:+.1f}%); MFLOPs {rec['baseline_mflops']:.2f} (Keras counter) vs {m['mflops']:.2f} "
                       "(2 x the file's MACs)" + also, variant="baseline"))
    recs = firmware_records(results)
    out.append(row("every firmware record byte-exact with the Python int8 runtime on TFLM (exits, classes, every "
                   "output byte)", "all",
                   sum(r["bit_exact"] for r in recs), len(recs), all(r["bit_exact"] for r in recs),
                   f"{sum(r['bit_exact'] for r in recs)} of {len(recs)}", variant=""))
    return out


def _position_for_goal(rec: dict) -> str:
    """The latest baseline layer an exit could follow and still reach GOAL (by_exit_position's ratio)."""
    ok = [p for p in rec.get("by_exit_position", []) if p["ratio"] >= GOAL]
    if not ok:
        return "none: no exit position reaches it"
    p = max(ok, key=lambda q: q["after_layer"])
    return (f"after baseline layer {p['after_layer']} ({p['op']}): ratio {p['ratio']:.2f}, the tail "
            f"{100 * p['tail_mac_share']:.0f}% of the MACs")


def write(results: Path) -> list[dict]:
    """firmware.csv and firmware.png from every record under `results`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = rows(results)
    if not table:
        return []
    write_csv(results / CSV, table)
    write_csv(results / TARGETS, targets(results))
    write_csv(results / DEPLOY_TARGETS, deploy_targets(results))
    deployments = list(dict.fromkeys((r["task"], r["variant"]) for r in table))
    boards = sorted(dict.fromkeys(f"{r['cpu']}/{r['kernels']}" for r in table),
                    key=lambda b: (b != BOARD.replace("_", "/", 1), b))  # the goal's board first
    first = {d: min((r for r in table if (r["task"], r["variant"]) == d),  # its FLOPs cut: on that board's samples
                    key=lambda r: boards.index(f"{r['cpu']}/{r['kernels']}")) for d in deployments}
    series = {"FLOPs cut": [first[d]["flops_cut_pct"] for d in deployments],
              "x86 TFLM latency cut": [first[d]["x86_tflm_latency_cut_pct"] for d in deployments]}
    for b in boards:  # the instruction cut on each board and kernels the deployment ran on
        cut = {(r["task"], r["variant"]): r["instruction_cut_pct"] for r in table if f"{r['cpu']}/{r['kernels']}" == b}
        series[f"instruction cut, {b}"] = [cut.get(d) for d in deployments]
    fig, ax = plt.subplots(figsize=(2.5 + 1.2 * len(deployments) * (len(series) / 4), 4))
    x, width = np.arange(len(deployments)), 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, [np.nan if v is None else v for v in values], width,
               label=name)
    ax.set_xticks(x, [f"{t.split('_')[0]}\n{v}" for t, v in deployments], fontsize=8)
    ax.set_ylabel("cut against the baseline (%)")
    ax.set_title("early-exit firmware on emulated Cortex-M boards vs the FLOPs cut (on the first board's test samples)",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    with files.atomic(results / FIGURE) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)
    return table
