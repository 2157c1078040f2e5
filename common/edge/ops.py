"""What the operators of an int8 TFLite graph compute: the multiply-accumulates of its convolutions and dense
layers, read off the graph (the FLOPs counter's MACs, for graphs that come without their Keras model)."""

from __future__ import annotations

import numpy as np

from ..console import quiet

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the operators that multiply-accumulate


def layer_macs(graph: bytes) -> dict[int, int]:
    """Multiply-accumulates of each convolution and dense operator of an int8 graph, by operator index (what an
    instruction count is divided by to compare kernels: the FLOPs counter's MACs, read off the graph)."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet((2,)):
        it = Interpreter(model_content=graph)
    shape = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    return {o["index"]: op_macs(o["op_name"], shape[o["outputs"][0]], shape[o["inputs"][1]])
            for o in it._get_ops_details() if o["op_name"] in MAC_OPS}


def op_macs(op: str, y: list[int], w: list[int]) -> int:
    """Multiply-accumulates of one convolution or dense operator from its output and filter shapes."""
    if op == "CONV_2D":  # filter (out, kh, kw, in): every output element sums kh*kw*in products
        return int(np.prod(y)) * int(np.prod(w[1:]))
    if op == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out)
        return int(np.prod(y)) * w[1] * w[2]
    return int(np.prod(y)) * w[1]  # FULLY_CONNECTED, filter (out, in)


def graph_mflops(segments: list[bytes]) -> list[float]:
    """Cumulative MFLOPs to leave at each exit, read off the int8 graphs (2 x the MACs of their convolutions and
    dense layers): for graphs that come without their Keras model."""
    per = [2 * sum(layer_macs(g).values()) / 1e6 for g in segments]
    return [float(v) for v in np.cumsum(per)]
