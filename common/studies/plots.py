"""The studies' figures: the placement search, the exit signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import plt, write


def exit_placement(rows: list[dict], out: Path, budget: float, title: str = "") -> None:
    """The placement search (`studies.placement`): for one exit, the calibration cut at `budget` points of each
    position (one line per head width, validation rule solid, certified dashed), one panel per cost basis;
    the best pair and triple of each basis as markers at their first exit's position."""
    costs = list(dict.fromkeys(r["cost"] for r in rows))
    fig, axes = plt.subplots(1, len(costs), figsize=(5 * len(costs), 3.8), squeeze=False)
    for ax, cost in zip(axes[0], costs, strict=True):
        mine = [r for r in rows if r["cost"] == cost and r["budget_points"] == budget]
        taps = list(dict.fromkeys(r["taps"] for r in mine if r["k"] == 1))
        for rule, style in (("validation", "-"), ("certified", "--")):
            for width in dict.fromkeys(r["widths"] for r in mine if r["k"] == 1):
                got = {r["taps"]: r["cut_pct"] for r in mine if r["k"] == 1 and r["rule"] == rule
                       and r["widths"] == width}
                ax.plot(range(len(taps)), [np.nan if got.get(t) is None else got[t] for t in taps], style,
                        marker=".", label=f"{width}, {rule}")
            for k, mark in ((2, "s"), (3, "^")):
                best = [r for r in mine if r["k"] == k and r["rule"] == rule and r["cut_pct"] is not None]
                if best:
                    b = max(best, key=lambda r: r["cut_pct"])
                    ax.plot([taps.index(b["taps"].split()[0])], [b["cut_pct"]], mark, ms=8, mfc="none",
                            label=f"best {k} exits, {rule}: {b['taps']}")
        ax.set_xticks(range(len(taps)), taps, rotation=60, ha="right", fontsize=6)
        ax.set_xlabel("exit after")
        ax.set_ylabel(f"cut in {cost} (%)")
        ax.set_title(cost, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write(fig, out)


def signal_shares(rows: list[dict], out: Path, title: str = "") -> None:
    """Each exit signal's test FLOPs cut as a share of its model's limit (the perfect signal), one group of bars
    per model: solid, the threshold picked on validation; hatched, tuned on test (an upper bound)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    names = list(dict.fromkeys(r["signal"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) + 2), 3.8))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        got = {r["model"]: r for r in rows if r["signal"] == name}
        x = np.arange(len(models)) + (j - (len(names) - 1) / 2) * width
        picked = [100 * (got[m]["test_share_of_limit"] or 0) for m in models]
        tuned = [100 * got[m]["test_share_of_limit_tuned"] for m in models]
        bars = ax.bar(x, picked, width, label=name)
        ax.bar(x, tuned, width, fill=False, hatch="//", edgecolor=bars.patches[0].get_facecolor())
    ax.axhline(100, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("% of the limit's FLOPs cut (test)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=len(names), loc="lower center")
    fig.tight_layout()
    write(fig, out)
