"""An early-exit runtime: the head graph, rho, and the tail only when needed.

The same runtime serves float and int8 graphs (see common.edge.export), at batch 1 as on a device, on
ai-edge-litert ("litert") or on the tflite-micro interpreter ("tflm", int8 graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.edge.export import TFLiteRunner


@dataclass
class Prediction:
    label: int
    exit: str  # "early_exit" or "final"
    probs: np.ndarray


def runner(content: bytes, backend: str = "litert", num_threads: int = 1):
    """A batch-1 runner of one graph on `backend` ("litert" or "tflm")."""
    if backend == "litert":
        return TFLiteRunner(content, num_threads)
    if backend == "tflm":
        from common.edge.micro import MicroRunner

        return MicroRunner(content)
    raise ValueError(f"backend must be litert or tflm, got '{backend}'")


class EarlyExitRuntime:
    """Run `head`; leave with its prediction when its max probability is >= rho, else run `tail`
    on the head's feature map. The confidence is compared in the head's output dtype, and the
    feature map is read only when the tail needs it, as a device would."""

    def __init__(self, head: bytes, tail: bytes, rho: float, num_threads: int = 1, backend: str = "litert"):
        self.head, self.tail = runner(head, backend, num_threads), runner(tail, backend, num_threads)
        self.rho = rho
        scale, zero = self.head.outputs["early_exit"]["quantization"]
        # rho in the output's units: int8 q >= rho/scale + zero  <=>  (q - zero) * scale >= rho
        self._threshold = rho / scale + zero if scale else rho
        (s_out, z_out), (s_in, z_in) = self.head.outputs["features"]["quantization"], self.tail.input["quantization"]
        # converted separately, the two graphs agree on the hand-over scale only up to float rounding;
        # then the int8 map passes as it is, as on a device (float graphs: (0.0, 0) both)
        self._requantize = z_out != z_in or not np.isclose(s_out, s_in, rtol=1e-5, atol=0.0)
        self.tail_runs = 0

    def __call__(self, x: np.ndarray) -> Prediction:
        self.head.invoke(self.head.quantize(x))
        early = self.head.get("early_exit")
        if early.max() >= self._threshold:
            return Prediction(int(early.argmax()), "early_exit", self.head.dequantize("early_exit", early))
        self.tail_runs += 1
        final = self._tail()
        return Prediction(int(final.argmax()), "final", final)

    def both(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(early-exit, final) probabilities, the tail always run: for evaluation and rho sweeps."""
        self.head.invoke(self.head.quantize(x))
        return self.head.dequantize("early_exit", self.head.get("early_exit")), self._tail()

    def _tail(self) -> np.ndarray:
        """The tail on the head's last feature map, requantized only when the two graphs' scales differ."""
        feats = self.head.get("features")
        if self._requantize:
            feats = self.tail.quantize(self.head.dequantize("features", feats))
        self.tail.invoke(feats)
        return self.tail.dequantize("final", self.tail.get("final"))


class SingleRuntime:
    """A one-graph model (the baseline) behind the same interface."""

    def __init__(self, model: bytes, num_threads: int = 1, backend: str = "litert"):
        self.model = runner(model, backend, num_threads)

    def __call__(self, x: np.ndarray) -> Prediction:
        self.model.invoke(self.model.quantize(x))
        p = self.model.dequantize("final", self.model.get("final"))
        return Prediction(int(p.argmax()), "final", p)
