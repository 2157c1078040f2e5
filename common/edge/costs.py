"""What leaving at each exit costs, on one basis: MFLOPs (the Keras FLOPs counter, or 2 x the MACs of int8
graphs) or a device's millions of instructions (`edge.costmodel`: a profiled firmware run, or its
instructions-per-MAC table). The sweeps, the certification and the placement all take it from here."""

from __future__ import annotations

import keras
import numpy as np

from ..errors import ModelError
from ..models import flops
from ..models.graph import keyed
from . import costmodel, ops
from .export import export_segments


def exit_costs(model: keras.Model, cost: str = "flops", x: np.ndarray | None = None) -> dict[str, dict]:
    """MFLOPs and parameters to leave at each exit (cumulative, exit heads passed included); with a device
    `cost` ("cortex-m4/cmsis_nn", `edge.costmodel`), also `minstructions`: millions of instructions to leave
    there on that device, from a profiled firmware run of the model's int8 graphs (calibrated on `x`, training
    inputs), or from the instructions-per-MAC table where no firmware can be built (`cost_source` says which)."""
    model, baseline = keyed(model)
    out = flops.baseline_costs(model) if baseline else flops.exit_costs(model)
    basis = costmodel.parse(cost)
    if not basis.cpu:
        return out
    if x is None:
        raise ModelError(f"exit_costs with cost '{cost}' needs x: training inputs to calibrate the int8 graphs")
    per_segment, source = costmodel.segment_costs(export_segments(model, x), x[:4], basis)
    for name, c in zip(out, costmodel.cumulative(per_segment), strict=True):
        out[name] |= {"minstructions": c, "cost_source": source}
    return out


def cost_vector(model, cost: str = "flops", x: np.ndarray | None = None) -> list[float]:
    """Cumulative cost to leave at each exit, in exit order, as the sweeps, `coordinate_search` and the
    certification take it: MFLOPs (`cost` "flops"; int8 graphs: 2 x their MACs) or a device's millions of
    instructions (`exit_costs`; int8 graphs are profiled as they are, `x` their float inputs)."""
    basis = costmodel.parse(cost)
    if isinstance(model, keras.Model):
        got = exit_costs(model, cost, x)  # in exit order, the final exit last
        return [c["minstructions" if basis.cpu else "mflops"] for c in got.values()]
    graphs = list(getattr(model, "graphs", model))
    if not basis.cpu:
        return ops.graph_mflops(graphs)
    if x is None:
        raise ModelError(f"cost '{cost}' of int8 graphs needs x: a few of their float inputs to run them on")
    return costmodel.cumulative(costmodel.segment_costs(graphs, x[:4], basis)[0])
