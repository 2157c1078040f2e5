"""An early-exit runtime on ai-edge-litert: the head graph, rho, and the tail only when needed.

The same runtime serves float and int8 graphs (see common.export), at batch 1 as on a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.export import TFLiteRunner


@dataclass
class Prediction:
    label: int
    exit: str  # "early_exit" or "final"
    probs: np.ndarray


class EarlyExitRuntime:
    """Run `head`; leave with its prediction when its max probability is >= rho, else run `tail`
    on the head's feature map."""

    def __init__(self, head: bytes, tail: bytes, rho: float):
        self.head, self.tail, self.rho = TFLiteRunner(head), TFLiteRunner(tail), rho
        self.tail_runs = 0

    def __call__(self, x: np.ndarray) -> Prediction:
        h = self.head(x)
        if float(h["early_exit"].max()) >= self.rho:
            return Prediction(int(h["early_exit"].argmax()), "early_exit", h["early_exit"])
        self.tail_runs += 1
        final = self.tail(h["features"])["final"]  # dequantized by the head, requantized by the tail
        return Prediction(int(final.argmax()), "final", final)


class SingleRuntime:
    """A one-graph model (the baseline) behind the same interface."""

    def __init__(self, model: bytes):
        self.model = TFLiteRunner(model)

    def __call__(self, x: np.ndarray) -> Prediction:
        p = self.model(x)["final"]
        return Prediction(int(p.argmax()), "final", p)
