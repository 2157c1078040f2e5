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


def shift_effects(rows: list[dict], out: Path, title: str = "") -> None:
    """The field study (`studies.field`): per shift, against its severity (0: none), each deployment's drop
    against the baseline under the same shift (solid), its full network's own (dotted) and its early exit's
    disagreement with the final exit in points (dashed), with its budget."""
    kinds = [k for k in dict.fromkeys(r["shift"] for r in rows) if k != "none"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3.4), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for j, name in enumerate(dict.fromkeys(r["deployment"] for r in rows)):
            mine = sorted((r for r in rows if r["deployment"] == name and r["shift"] in ("none", kind)),
                          key=lambda r: r["severity"])
            sev = [r["severity"] for r in mine]
            color = f"C{j}"
            ax.plot(sev, [r["drop_points"] for r in mine], "-o", color=color, ms=3, label=f"{name}: drop")
            ax.plot(sev, [r["final_exit_drop_points"] for r in mine], ":", color=color, label="its full network's")
            ax.plot(sev, [100 * r["disagreement"] for r in mine], "--", color=color, label="disagreement")
            ax.axhline(mine[0]["budget_points"], color=color, lw=0.6, alpha=0.6)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("points (test)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write(fig, out)


def stream_trace(both, order: np.ndarray, run, d, spec, switch: int, out: Path, window: int = 500) -> None:
    """One monitored stream (`studies.streams.run`): the running drop against the baseline with and without the
    monitor, the running exit rate, and the monitor's statistic against 1 / alpha, with the switch and the alarm."""
    def running(v: np.ndarray) -> np.ndarray:
        c = np.cumsum(np.insert(np.asarray(v, dtype=float), 0, 0.0))
        return (c[window:] - c[:-window]) / window

    labels, base = both.labels[order], both.baseline[order] == both.labels[order]
    t = np.arange(window - 1, len(order))
    fig, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    axes[0].plot(t, 100 * running(base.astype(float) - (both.predicted[order] == labels)), label="unmonitored")
    axes[0].plot(t, 100 * running(base.astype(float) - (run.predicted == labels)), label="monitored")
    axes[0].axhline(d.budget, color="k", lw=0.8, ls=":", label="budget")
    axes[0].set_ylabel(f"drop, last {window} (points)")
    exits = np.where(np.arange(len(order)) > run.alarm, len(d.rhos), both.exit[order]) if run.alarm >= 0 \
        else both.exit[order]
    axes[1].plot(t, 100 * running(exits < len(d.rhos)))
    axes[1].set_ylabel(f"early exits, last {window} (%)")
    if run.history:
        h = np.array(run.history)
        axes[2].semilogy(h[:, 0], h[:, 1], drawstyle="steps-post")
    axes[2].axhline(1 / spec.alpha, color="r", lw=0.8, ls=":", label="1 / alpha")
    axes[2].set_ylabel("statistic")
    axes[2].set_xlabel("sample")
    for ax in axes:
        ax.axvline(switch, color="gray", lw=0.8, ls="--")
        if run.alarm >= 0:
            ax.axvline(run.alarm, color="r", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{d.name}: shift at sample {switch} (dashed), alarm at {run.alarm} (red)", fontsize=10)
    fig.tight_layout()
    write(fig, out)
