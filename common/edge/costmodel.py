"""What an exit costs on a device: instructions per operator from one profiled firmware run of the int8 graphs
(`edge.board_check.on_board`, cached by everything that goes in, the graphs among them), split per segment into the
backbone (what computes the map handed on) and the exit head, and scaled to the release build's counts; and, where
no firmware can be built, an instructions-per-MAC table per operator and shape class fitted on measured layers,
an estimate that says so (docs/placement.md).

A cost is named "flops" (the Keras FLOPs counter, common/models/flops.py) or "<cpu>/<kernels>", e.g.
"cortex-m4/cmsis_nn"; "<cpu>/<kernels>:estimate" asks for the table even where firmware can be built.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from .. import paths
from ..console import quiet
from ..errors import ConfigError
from ..files import read_csv, write_csv
from . import board, board_check
from .ops import MAC_OPS, op_macs
from .toolchain import BOARDS, KERNELS, FirmwareError

log = logging.getLogger("trecx.cost")
FLOPS = "flops"


@dataclasses.dataclass(frozen=True)
class Cost:
    """A cost basis: FLOPs, or the instructions of a CPU with a TFLM kernel library (measured or estimated)."""

    cpu: str = ""  # "" for FLOPs
    kernels: str = ""
    estimate: bool = False  # the fitted table rather than a firmware run

    @property
    def name(self) -> str:
        return FLOPS if not self.cpu else f"{self.cpu}/{self.kernels}" + (":estimate" if self.estimate else "")

    @property
    def unit(self) -> str:
        """What one cost number counts: MFLOPs or millions of instructions."""
        return "MFLOPs" if not self.cpu else "M instructions"

    @property
    def device(self) -> str:
        return f"{self.cpu}_{self.kernels}"


def parse(cost: str | Cost) -> Cost:
    """`cost` as a Cost; a one-line ConfigError naming what is accepted."""

    if isinstance(cost, Cost):
        return cost
    if cost == FLOPS:
        return Cost()
    spec, _, mode = str(cost).partition(":")
    cpu, _, kernels = spec.partition("/")
    if cpu not in BOARDS or kernels not in KERNELS or mode not in ("", "estimate"):
        raise ConfigError(f"cost '{cost}' is not known: use 'flops' or '<cpu>/<kernels>[:estimate]' with cpu one of "
                          f"{', '.join(BOARDS)} and kernels one of {', '.join(KERNELS)} (e.g. 'cortex-m4/cmsis_nn')")
    return Cost(cpu, kernels, mode == "estimate")


def graph_ops(graph: bytes) -> list[dict]:
    """Each operator of an int8 graph, in order: index, op, MACs, input and output elements, kernel size and
    stride (convolutions), and `part`: "backbone" when it computes the segment's output "features" or its
    "final", "head" otherwise (the exit head: its cost is paid only by the exits that run it)."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet((2,)):
        it = Interpreter(model_content=graph)
    shape = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    outputs = next(iter(it._get_full_signature_list().values()))["outputs"]
    keep = [i for n, i in outputs.items() if n in ("features", "final")] or list(outputs.values())
    producer = {t: o["index"] for o in ops for t in o["outputs"]}
    backbone, stack = set(), [producer[t] for t in keep if t in producer]
    while stack:
        i = stack.pop()
        if i not in backbone:
            backbone.add(i)
            stack.extend(producer[t] for t in ops[i]["inputs"] if t in producer)
    rows = []
    for o in ops:
        ins = [shape[t] for t in o["inputs"] if t >= 0 and t in shape]
        y = shape[o["outputs"][0]]
        row = {"index": o["index"], "op": o["op_name"],
               "macs": op_macs(o["op_name"], y, shape[o["inputs"][1]]) if o["op_name"] in MAC_OPS else 0,
               "in_elements": int(np.prod(ins[0])) if ins else 0, "out_elements": int(np.prod(y)),
               "kernel": "", "stride": 1, "part": "backbone" if o["index"] in backbone else "head"}
        if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 1 and len(ins[0]) == 4:
            w = ins[1]
            row["kernel"] = f"{w[1]}x{w[2]}"
            row["stride"] = max(1, round(ins[0][1] / max(1, y[1])))
        rows.append(row)
    return rows


def profile(segments: list[bytes], x: np.ndarray, cost: Cost, work: Path | None = None) -> list[list[dict]]:
    """`graph_ops` of every segment with `instructions`: what each operator ran per call on the device, from a
    profiled firmware run of all segments on `x` (no exit fires, so every segment runs on every sample), scaled
    so that each segment's operators sum to its release build's count (the profiler's overhead removed, the
    segment's own call overhead spread over its operators)."""

    libs = board.libraries(cost.cpu, cost.kernels, profile=True)
    # no board limits: a profile's one arena holds every segment of a probe with many exits, which no
    # deployment would (the deployed model's own firmware record checks that it fits)
    rec = board_check.on_board(segments, [None] * (len(segments) - 1), x, libs, cost.cpu,
                             work or paths.cache_dir() / "firmware", limits=(1 << 30, 1 << 30),
                             note="a cost profile: every segment runs")
    n = len(rec["release"]["samples"])
    out = []
    for i, graph in enumerate(segments):
        release = float(np.mean([s["segments"][i] for s in rec["release"]["samples"]]))
        measured = {o["index"]: o["instructions"] / n for o in rec["profiled"]["ops"][i]}
        scale = release / max(sum(measured.values()), 1.0)
        out.append([r | {"instructions": measured.get(r["index"], 0.0) * scale} for r in graph_ops(graph)])
    return out


def shape_class(op: dict) -> str:
    """The table's row for an operator: its type; for a convolution, 1x1 or larger and whether its input
    channels are a multiple of 4 (CMSIS-NN runs 1x1 convolutions and aligned channels on other code paths);
    for a depthwise one, its kernel and stride."""
    if op["op"] == "CONV_2D":
        kh, kw = (int(v) for v in op["kernel"].split("x"))
        cin = round(op["macs"] / max(op["out_elements"] * kh * kw, 1))  # MACs per output = kh * kw * cin
        return f"CONV_2D {'1x1' if kh * kw == 1 else 'kxk'}{'' if cin % 4 == 0 else ' unaligned'}"
    if op["op"] == "DEPTHWISE_CONV_2D":
        return f"{op['op']} {op['kernel']} s{int(op['stride'])}"
    return op["op"]


def fit(rows: list[dict]) -> dict[str, dict]:
    """The instructions-per-MAC table: per shape class, least squares of instructions on MACs, output
    elements and a constant (operators with MACs) or on input elements and a constant (the others), and one
    row per operator type (the class's fallback where a shape was never measured)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        for cls in dict.fromkeys((shape_class(r), r["op"])):  # its shape class, and its type's fallback row
            groups.setdefault(cls, []).append(r)
    table = {}
    for cls, rs in groups.items():
        y = np.array([r["instructions"] for r in rs], dtype=float)
        if rs[0]["op"] in MAC_OPS:
            cols = [[r["macs"] for r in rs], [r["out_elements"] for r in rs]]
        else:
            cols = [[r["in_elements"] for r in rs]]
        a = np.column_stack([*cols, np.ones(len(rs))]).astype(float)
        coef = _nonneg_lstsq(a, y) if len(rs) >= a.shape[1] else _ratio(a, y)
        mac = rs[0]["op"] in MAC_OPS
        table[cls] = {"class": cls, "per_mac": float(coef[0]) if mac else 0.0,
                      "per_output": float(coef[1]) if mac else 0.0, "per_input": 0.0 if mac else float(coef[0]),
                      "fixed": float(coef[-1]), "layers": len(rs)}
    return table


def _nonneg_lstsq(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0 (a negative rate would predict negative costs for large
    layers), relative to each layer's size so that the small layers count as much as the large ones."""
    from scipy.optimize import nnls

    w = 1.0 / np.maximum(y, 1.0)
    return nnls(a * w[:, None], y * w)[0]


def _ratio(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Too few layers for a fit: all of it as the first column's rate."""
    coef = np.zeros(a.shape[1])
    coef[0] = y.sum() / max(a[:, 0].sum(), 1.0)
    return coef


def predict(table: dict[str, dict], op: dict) -> float:
    """An operator's instructions from the table (its shape class, else its type's row); an op the table never
    saw costs its input elements at the mean per-input rate of the table's other element-wise ops."""
    row = table.get(shape_class(op)) or table.get(op["op"])
    if row is None:
        rates = [r["per_input"] for r in table.values() if r["per_input"]]
        return float(np.mean(rates) if rates else 1.0) * op["in_elements"]
    return (row["per_mac"] * op["macs"] + row["per_output"] * op["out_elements"] + row["per_input"] *
            op["in_elements"] + row["fixed"])


def estimate(segments: list[bytes], table: dict[str, dict]) -> list[list[dict]]:
    """`profile`'s rows from the table instead of a firmware run."""
    return [[r | {"instructions": predict(table, r)} for r in graph_ops(g)] for g in segments]


def held_out(rows: list[dict], groups: str = "task") -> list[dict]:
    """The table's error on layers it was not fitted on: for each value of `groups` (a task), fit on the other
    groups' layers and predict this one's, per layer and in total (what a whole exit path's estimate misses);
    and, across tasks, each half of a seeded random split of the layers predicted from the other half."""
    out = []
    half = np.random.default_rng(0).permutation(len(rows)) % 2
    folds = [(f"{groups} {g}", [r[groups] != g for r in rows]) for g in sorted({r[groups] for r in rows})]
    folds += [(f"random half {h}", list(half != h)) for h in (0, 1)]
    for g, train in folds:
        table = fit([r for r, t in zip(rows, train, strict=True) if t])
        test = [r for r, t in zip(rows, train, strict=True) if not t and r["instructions"] > 0]
        got = np.array([predict(table, r) for r in test])
        want = np.array([r["instructions"] for r in test])
        err = np.abs(got - want) / want
        out.append({"held_out": g, "layers": len(test), "median_layer_error_pct": 100 * float(np.median(err)),
                    "mean_layer_error_pct": 100 * float(err.mean()),
                    "instruction_weighted_error_pct": 100 * float(np.abs(got - want).sum() / want.sum()),
                    "total_error_pct": 100 * float(got.sum() / want.sum() - 1)})
    return out


def tables_dir() -> Path:
    """Where the instructions-per-MAC tables are read from: $TRECX_COST_TABLES, else the ones the package ships."""
    return Path(os.environ.get("TRECX_COST_TABLES") or Path(__file__).parent / "tables")


def table_path(cost: Cost, folder: Path | None = None) -> Path:
    return (folder or tables_dir()) / f"{cost.device}.csv"


def write_table(table: dict[str, dict], path: Path) -> None:

    write_csv(path, [table[c] for c in sorted(table)])


def read_table(path: Path) -> dict[str, dict]:
    """The committed table of a device (`python -m common costmodel` writes it)."""
    if not path.exists():
        raise ConfigError(f"{path} not found: no instructions-per-MAC table for this device (python -m common "
                          "costmodel fits one from measured layers)")

    return {r["class"]: r for r in read_csv(path)}


def segment_costs(segments: list[bytes], x: np.ndarray, cost: Cost,
                  tables: Path | None = None) -> tuple[list[list[dict]], str]:
    """Per-operator instructions of the segments and where they came from: a profiled firmware run, or, when
    `cost.estimate` or no firmware can be built here (no Arm toolchain, QEMU or TFLM sources), the table."""

    if not cost.estimate:
        try:
            return profile(segments, x, cost), f"measured: a profiled firmware run on {cost.cpu} ({cost.kernels})"
        except FirmwareError as e:
            log.warning("no firmware for %s (%s): estimating from the instructions-per-MAC table", cost.name, e)
    path = table_path(cost, tables)
    return estimate(segments, read_table(path)), f"estimated: the instructions-per-MAC table {path.name}"


def cumulative(per_segment: list[list[dict]]) -> list[float]:
    """Millions of instructions to leave at each exit: every segment up to it, whole."""
    return [float(v) for v in np.cumsum([sum(r["instructions"] for r in s) for s in per_segment]) / 1e6]
