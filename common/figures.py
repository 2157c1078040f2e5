"""What every stage's figures share: matplotlib without a display, and one way to finish and write a figure.
Each stage draws its own (`evaluation.plots`, `train.plots`, `edge.plots`, `studies.plots`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from . import files


def save(fig, ax, out: Path, title: str, legend: bool = True, grid_axis: str = "both") -> None:
    """Title, grid and legend, then write the figure to `out` (its folder made) and close it."""
    ax.set_title(title)
    ax.grid(alpha=0.3, axis=grid_axis)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    write(fig, out)


def write(fig, out: Path, **savefig) -> None:
    """Write a finished figure to `out` (its folder made, atomically) and close it."""
    with files.atomic(out) as tmp:
        fig.savefig(tmp, dpi=130, **savefig)
    plt.close(fig)
