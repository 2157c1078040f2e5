"""The training stage's figures: losses per epoch from the run logs."""

from __future__ import annotations

from pathlib import Path

from ..figures import plt
from ..figures import save as _save
from ..files import read_csv


def training_curves(logs: dict[str, Path], out: Path, metric: str = "val_final_loss", mark: int | None = None,
                    title: str = "") -> None:
    """`metric` per epoch from each run's log.csv (a baseline logs `val_loss`, used when `metric` is
    absent); `mark` draws a line at an epoch (e.g. the end of the head-only phase)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, path in logs.items():
        rows = read_csv(path)
        key = metric if metric in rows[0] else "val_loss"
        ax.plot([r["epoch"] + 1 for r in rows], [r[key] for r in rows], label=f"{label} ({key})")
    if mark is not None:
        ax.axvline(mark + 0.5, color="k", ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    _save(fig, ax, out, title)
