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

from common.evaluation.evaluate import write_csv

CSV, FIGURE, TARGETS = "firmware.csv", "firmware.png", "firmware_targets.csv"
GOAL = 0.8  # instruction cut / FLOPs cut of the best shipped early exit per task (issue 29)
BOARD = "cortex-m4_cmsis_nn"  # what the goal is judged on: the kernels a Cortex-M deployment uses


def rows(results: Path) -> list[dict]:
    out = []
    for path in sorted(results.glob("*/deploy/*/firmware_*.json")):
        r = json.loads(path.read_text())
        bench = path.parent / "benchmark.json"
        tflm = json.loads(bench.read_text()).get("tflm", {}) if bench.exists() else {}
        out.append({"task": r["task"], "variant": r["variant"], "cpu": r["cpu"], "kernels": r["kernels"],
                    "samples": r["samples"], "subset": r["subset"], "bit_exact": r["bit_exact"],
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
                    "mlperf_tiny_published_cycles": r["mlperf_tiny_published_cycles"],
                    "implied_cycles_per_instruction": r["implied_cycles_per_instruction"],
                    "flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"]})
    return out


def _interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def targets(results: Path) -> list[dict]:
    """Per task, the shipped early exit with the largest instruction cut on BOARD against GOAL; when it misses,
    the layers that keep its cut lower and the exit-study cell (same board) with the largest instruction cut."""
    out = []
    for task in sorted({p.parts[-4] for p in results.glob(f"*/deploy/*/firmware_{BOARD}.json")}):
        recs = [json.loads(p.read_text()) for p in sorted(results.glob(f"{task}/deploy/*/firmware_{BOARD}.json"))]
        best = max(recs, key=lambda r: r["instruction_cut_pct"])
        ratio = best["instruction_to_flops_cut_ratio"]
        cells = [json.loads(p.read_text()) for p in sorted(results.glob(f"{task}/exit_study/*/firmware_{BOARD}.json"))]
        cell = max(cells, key=lambda c: c["instruction_cut_pct"]) if cells else None
        met = ratio is not None and ratio >= GOAL
        out.append({"task": task, "variant": best["variant"], "board": BOARD, "samples": best["samples"],
                    "bit_exact": best["bit_exact"], "flops_cut_pct": best["flops_cut_pct"],
                    "instruction_cut_pct": best["instruction_cut_pct"], "ratio": ratio,
                    "ratio_ci95": _interval(best.get("instruction_to_flops_cut_ratio_ci95")), "goal": GOAL,
                    "met": met, "head_instructions_per_mac": best.get("instructions_per_mac", {}).get("head"),
                    "tail_instructions_per_mac": best.get("instructions_per_mac", {}).get("tail"),
                    "kernels_keeping_it_lower": "" if met else "; ".join(best.get("costliest_layers", [])),
                    "exit_position_for_goal": "" if met else _position_for_goal(best),
                    "exit_study_best_cell": cell["variant"] if cell else "",
                    "exit_study_best_instruction_cut_pct": cell["instruction_cut_pct"] if cell else None,
                    "exit_study_best_flops_cut_pct": cell["flops_cut_pct"] if cell else None,
                    "exit_study_best_ratio": cell["instruction_to_flops_cut_ratio"] if cell else None})
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

    from common import files

    table = rows(results)
    if not table:
        return []
    write_csv(results / CSV, table)
    write_csv(results / TARGETS, targets(results))
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
