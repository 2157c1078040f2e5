"""The instructions-per-MAC table of a device, for where no firmware can be built:

    python -m common costmodel --cost cortex-m4/cmsis_nn

Reads every operator the placement searches measured (results/<task>/placement_layers.csv, written by
`python -m common place`), one row per distinct layer shape of each task, fits the table (`edge.costmodel.fit`:
per operator type and shape class, instructions on MACs, output elements and a constant) on all of them into
the table <cpu>_<kernels>.csv, and reports its error on layers it was not fitted on: for each task, the
table fitted on the other tasks' layers predicts this one's (results/costmodel/<cpu>_<kernels>_error.csv).
In the checkout the table goes into the package (common/edge/tables/, shipped as package data: what an
estimate reads wherever the toolkit is installed); installed, into results/costmodel/ (read it through
$TRECX_COST_TABLES).
A cost "<cpu>/<kernels>:estimate" (or a device whose firmware cannot be built here) uses the table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import files, paths, tasks
from ..config import parse, versions
from ..edge import costmodel
from ..errors import ConfigError
from ..files import read_csv, write_csv
from ..reporting import placement as targets

log = logging.getLogger("trecx.costmodel")


@dataclass
class CostModelConfig:
    """Options of `python -m common costmodel`."""

    cost: str = "cortex-m4/cmsis_nn"  # the device whose measured layers are fitted
    results_dir: str = ""  # where each task's placement_layers.csv is; "" = results/
    tables_dir: str = ""  # where the table goes; "" = the package's tables in the checkout, else results/costmodel


def layers(root: Path, cost: costmodel.Cost) -> list[dict]:
    """Every task's measured operators of `cost`'s device, one row per distinct shape (instructions averaged
    over the runs that measured it: the same backbone layer is measured once per probe)."""
    rows: dict[tuple, list[dict]] = {}
    for name in tasks.NAMES:
        path = root / name / "placement_layers.csv"
        if not path.exists():
            continue
        meta = root / name / "placement.json"
        placed = json.loads(meta.read_text()) if meta.exists() else {}
        if placed.get("config", {}).get("cost", cost.name).split(":")[0] != cost.name:
            continue
        for r in read_csv(path):
            r = {k: ("" if v is None else v) for k, v in r.items()} | {"task": name}
            key = (name, costmodel.shape_class(r), r["macs"], r["in_elements"], r["out_elements"])
            rows.setdefault(key, []).append(r)
    return [group[0] | {"instructions": float(np.mean([r["instructions"] for r in group])), "measured": len(group)}
            for group in rows.values()]


def run(cfg: CostModelConfig) -> dict:
    """Fit, write the table and its held-out error; returns both."""
    cost = costmodel.parse(cfg.cost)
    if not cost.cpu:
        raise ConfigError("--cost: a device, <cpu>/<kernels> (FLOPs need no table)")
    root = Path(cfg.results_dir or paths.results_dir())
    rows = layers(root, cost)
    if not rows:
        raise ConfigError(f"no measured layers of {cost.name} under {root}/<task>/placement_layers.csv: run python -m "
                          f"common place --task <task> --cost {cost.name} first")
    table = costmodel.fit(rows)
    default = costmodel.tables_dir() if paths.CHECKOUT else root / "costmodel"  # in the checkout: what estimates read
    costmodel.write_table(table, costmodel.table_path(cost, Path(cfg.tables_dir) if cfg.tables_dir else default))
    error = costmodel.held_out(rows) if len({r["task"] for r in rows}) > 1 else []
    write_csv(root / "costmodel" / f"{cost.device}_error.csv", error)
    files.write_json(root / "costmodel" / f"{cost.device}.json", {
        "cost": cost.name, "versions": versions(), "layers": len(rows), "tasks": sorted({r["task"] for r in rows}),
        "fitted_on": "every task's distinct measured operators (placement_layers.csv, release-scaled profiles)",
        "held_out": "per task: the table fitted on the other tasks' layers predicts this task's", "error": error})
    for e in error:
        log.info("%s held out: %d layers, median layer error %.1f%%, instruction-weighted %.1f%%, total %+.1f%%",
                 e["held_out"], e["layers"], e["median_layer_error_pct"], e["instruction_weighted_error_pct"],
                 e["total_error_pct"])
    if root == paths.results_dir():

        targets.write(root)
    return {"table": table, "error": error}


def main(argv: list[str] | None = None) -> dict:
    return run(parse(CostModelConfig, None, argv, description=__doc__))
