"""The board's figures: where a firmware's instructions go, per exit and per layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import plt, write
from .board_check import shared_layers


def firmware_breakdown(rec: dict, out: Path, title: str = "") -> None:
    """Instructions per sample on the emulated board (profiled build), by operator type: the baseline firmware
    against the early-exit one (every segment where it ran), each bar stacked by operator; below, where the record
    has MACs, the instructions per MAC of each baseline layer, with the first early exit's place marked."""
    bars = {"baseline": rec["per_op"]["baseline"],
            "early exit": [r for name in rec.get("segments", ["head", "tail"]) for r in rec["per_op"][name]]}
    ops = list(dict.fromkeys(r["op"] for rows in bars.values() for r in sorted(rows, key=lambda r: -r[
        "instructions_per_sample"])))
    layers = [r for r in rec.get("per_layer", {}).get("baseline", []) if r.get("instructions_per_mac")]
    fig, axes = plt.subplots(2 if layers else 1, 1, figsize=(7, 6.2 if layers else 3.2), squeeze=False,
                             height_ratios=[1, 1.4] if layers else None, layout="constrained")
    ax = axes[0, 0]
    colors = dict(zip(ops, plt.get_cmap("tab20")(np.linspace(0, 1, max(len(ops), 2))), strict=False))
    labelled = set()
    for y, rows in enumerate(bars.values()):
        left = 0.0
        for op in ops:
            v = sum(r["instructions_per_sample"] for r in rows if r["op"] == op) / 1e6
            if v:
                ax.barh(y, v, left=left, color=colors[op], label=None if op in labelled else op)
                labelled.add(op)
                left += v
    ax.set_yticks(range(len(bars)), list(bars))
    ax.set_xlabel("million instructions per sample (profiled build)")
    ax.invert_yaxis()
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    ax.set_title(title or f"instruction cut {rec['instruction_cut_pct']:.1f}% vs FLOPs cut {rec['flops_cut_pct']:.1f}%",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    if layers:
        ax = axes[1, 0]
        ax.bar(range(len(layers)), [r["instructions_per_mac"] for r in layers],
               color=[colors.get(r["op"], "gray") for r in layers])
        ax.set_xticks(range(len(layers)), [str(r["index"]) for r in layers], fontsize=6)
        ax.set_xlabel("baseline layer (operator index; bar colour: operator)")
        ax.set_ylabel("instructions per MAC")
        shared = shared_layers(rec["per_layer"]["head"], rec["per_layer"]["baseline"])
        cut = sum(1 for r in layers if r["index"] < shared)
        if 0 < cut < len(layers):
            ax.axvline(cut - 0.5, color="k", ls="--", lw=1)
            ax.text(cut - 0.4, ax.get_ylim()[1] * 0.92, "early exit", fontsize=7, va="top")
        ax.grid(alpha=0.3, axis="y")
    write(fig, out, bbox_inches="tight")
