"""Every firmware record (`results/<task>/deploy/<variant>/firmware_<cpu>_<kernels>.json`, written by the
`firmware` command) in one table and one figure: `results/firmware.csv` and `results/firmware.png`, the MCU
instruction cut beside the FLOPs cut and the x86 TFLM latency cut of the same deployment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.evaluation.evaluate import write_csv

CSV, FIGURE = "firmware.csv", "firmware.png"


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
                    "baseline_instructions": r["instructions"]["baseline"],
                    "early_exit_instructions": r["instructions"]["early_exit_firmware"],
                    "mlperf_tiny_published_cycles": r["mlperf_tiny_published_cycles"],
                    "implied_cycles_per_instruction": r["implied_cycles_per_instruction"],
                    "flash_bytes": r["flash_bytes"], "ram_bytes": r["ram_bytes"]})
    return out


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
    labels = [f"{r['task'].split('_')[0]}\n{r['variant']}\n{r['cpu']}/{r['kernels']}" for r in table]
    fig, ax = plt.subplots(figsize=(1.3 + 1.5 * len(table), 3.6))
    x = np.arange(len(table))
    for k, (key, name) in enumerate((("flops_cut_pct", "FLOPs cut"), ("instruction_cut_pct", "MCU instruction cut"),
                                     ("x86_tflm_latency_cut_pct", "x86 TFLM latency cut"))):
        ax.bar(x + (k - 1) * 0.27, [r[key] if r[key] is not None else np.nan for r in table], 0.27, label=name)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("cut against the baseline (%)")
    ax.set_title("early-exit firmware on an emulated Cortex-M vs the FLOPs cut (same test samples)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with files.atomic(results / FIGURE) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)
    return table
