"""The evaluation's figures, drawn from the results files (CSV, NPZ); axis limits always follow the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import plt, write
from ..figures import save as _save
from ..files import read_csv


def benefit_curves(curves: dict[str, Path], out: Path, baseline: tuple[float, float] | None = None,
                   baseline_label: str = "baseline", title: str = "", logx: bool = False,
                   points: dict[str, list[tuple[float, float]]] | None = None, column: str = "mflops",
                   unit: str = "MFLOPs") -> None:
    """Accuracy against mean cost per sample, one line per benefit-curve CSV (rho swept 0..1), with the baseline
    model as a star; `points`: extra labelled markers, (cost, accuracy) each. `column` and `unit`: the cost axis,
    MFLOPs or a device's instructions (a CSV's "minstructions" column, unit "M instructions on cortex-m4")."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, path in curves.items():
        rows = read_csv(path)
        ax.plot([r[column] for r in rows], [100 * r["accuracy"] for r in rows], marker=".", ms=3, label=label)
    for label, xy in (points or {}).items():
        ax.plot([x for x, _ in xy], [100 * y for _, y in xy], "D", ms=6, mfc="none", mew=1.5, label=label)
    if baseline is not None:
        ax.plot([baseline[0]], [100 * baseline[1]], "k*", ms=12, label=baseline_label)
    if logx:  # plain numbers at 1-2-5 steps, no crowded minor labels
        from matplotlib import ticker

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(f"mean {unit} per sample")
    ax.set_ylabel("accuracy (%)")
    _save(fig, ax, out, title)


def confidence_violin(confidences: dict[str, np.ndarray], out: Path, band: tuple[float, float] = (0.65, 0.9),
                      title: str = "") -> None:
    """Violin plot of early-exit confidence (max softmax) of the samples inside `band`."""
    fig, ax = plt.subplots(figsize=(5, 4))
    data = [c[(c >= band[0]) & (c <= band[1])] for c in confidences.values()]
    shown = [i for i, d in enumerate(data) if len(d) > 1]
    if shown:
        ax.violinplot([data[i] for i in shown], positions=[i + 1 for i in shown], showmedians=True)
    labels = [f"{k}\n(n={len(d)})" for k, d in zip(confidences, data, strict=True)]
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_ylabel(f"early-exit confidence in [{band[0]}, {band[1]}]")
    _save(fig, ax, out, title, legend=False, grid_axis="y")


def placement(rows: list[dict], out: Path, baseline: float | None = None, baseline_label: str = "baseline",
              title: str = "") -> None:
    """Standalone test accuracy of the early and final exits against the EE position (Fig 2); rows
    hold position, early_exit_test_accuracy and final_test_accuracy."""
    fig, ax = plt.subplots(figsize=(5, 4))
    pos = [r["position"] for r in rows]
    ax.plot(pos, [100 * r["final_test_accuracy"] for r in rows], "o-", label="final exit")
    ax.plot(pos, [100 * r["early_exit_test_accuracy"] for r in rows], "s-", label="early exit")
    if baseline is not None:
        ax.axhline(100 * baseline, color="k", ls="--", lw=1, label=baseline_label)
    ax.set_xticks(pos, [f"after block {p}" for p in pos])
    ax.set_ylabel("test accuracy (%)")
    _save(fig, ax, out, title)


def heatmaps(panels: dict[str, np.ndarray], rows: list[str], cols: list[str], out: Path, title: str = "",
             xlabel: str = "", ylabel: str = "") -> None:
    """One annotated heat map per panel (same rows and columns, e.g. exit width x position); NaN cells
    (not measured) stay blank. The colour scale of each panel follows its own data."""
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 2.6 * len(panels), 0.9 + 0.55 * len(rows)),
                             squeeze=False)
    for ax, (name, grid) in zip(axes[0], panels.items(), strict=True):
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):  # dark text on the bright end of the scale
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                        color="k" if im.norm(v) > 0.6 else "w")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write(fig, out)


def gain_intervals(rows: list[dict], out: Path, title: str = "") -> None:
    """Mean gain (points) with its 95% interval, one marker per (comparison, metric) row of a
    report.aggregate table; zero drawn, so a gain beyond its interval is seen at once."""
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.45 * len(rows)))
    ys = np.arange(len(rows))[::-1]
    for y, r in zip(ys, rows, strict=True):
        ax.errorbar(r["mean"], y, xerr=[[r["mean"] - r["ci95_low"]], [r["ci95_high"] - r["mean"]]], fmt="o",
                    capsize=3, color="C0" if "curve" in r["metric"] else "C1")
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(ys, [f"{r['model']}\n{r['metric']} (n={r['n']})" for r in rows], fontsize=7)
    ax.set_xlabel("gain of T-RecX, accuracy points (mean, 95% interval)")
    _save(fig, ax, out, title, legend=False, grid_axis="x")


def mean_curves(curves: dict[str, list[Path]], out: Path, points: int = 60, title: str = "") -> list[dict]:
    """Benefit curves averaged over seeds: each seed's curve interpolated on the MFLOPs range that all
    of a variant's seeds cover, drawn as the mean with its 95% t-interval as a band. Returns the rows
    drawn (variant, mflops, mean accuracy and interval, n)."""
    from scipy import stats

    fig, ax = plt.subplots(figsize=(5.5, 4))
    rows = []
    for label, paths in curves.items():
        runs = [read_csv(p) for p in paths]
        xs = [np.array([r["mflops"] for r in run]) for run in runs]
        lo, hi = max(x.min() for x in xs), min(x.max() for x in xs)
        grid = np.linspace(lo, hi, points)
        ys = np.array([np.interp(grid, np.sort(x), np.array([r["accuracy"] for r in run])[np.argsort(x)])
                       for x, run in zip(xs, runs, strict=True)]) * 100
        mean = ys.mean(0)
        half = stats.t.ppf(0.975, len(ys) - 1) * ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else 0 * mean
        line, = ax.plot(grid, mean, label=f"{label} (n={len(ys)})")
        ax.fill_between(grid, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
        rows += [{"model": label, "mflops": float(g), "accuracy_mean": float(m), "ci95_low": float(m - h),
                  "ci95_high": float(m + h), "n": len(ys)} for g, m, h in zip(grid, mean, mean * 0 + half, strict=True)]
    ax.set_xlabel("mean MFLOPs per sample")
    ax.set_ylabel("accuracy (%), mean and 95% interval")
    _save(fig, ax, out, title)
    return rows


def calibration_study(rows: list[dict], out: Path, delta: float, title: str = "") -> None:
    """Per measure (a panel each), every model x threshold rule as a point: its mean FLOPs cut against how
    often it broke the accuracy budget, with the 95% interval of that rate; delta as a dashed line."""
    measures = list(dict.fromkeys(r["measured_on"] for r in rows))
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 4.2), squeeze=False)
    markers = dict(zip(dict.fromkeys(r["model"] for r in rows), "os^Dv", strict=False))
    colors = {rule: f"C{i}" for i, rule in enumerate(dict.fromkeys(r["rule"] for r in rows))}
    for ax, measure in zip(axes[0], measures, strict=True):
        for r in (r for r in rows if r["measured_on"] == measure):
            y = 100 * r["violation_rate"]
            err = [[y - 100 * r["violation_ci95_low"]], [100 * r["violation_ci95_high"] - y]]
            ax.errorbar(r["mean_cut_pct"], y, yerr=err, fmt=markers[r["model"]], color=colors[r["rule"]], capsize=3,
                        label=f"{r['model']}: {r['rule']}")
        ax.axhline(100 * delta, color="k", ls="--", lw=1, label=f"delta = {delta:g}")
        ax.set_xlabel("mean FLOPs cut vs baseline (%)")
        ax.set_ylabel("budget broken (% of splits)")
        ax.set_title(f"measured on the {measure}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    write(fig, out)
