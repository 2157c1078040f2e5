"""The tflite-micro Python interpreter: does an int8 graph run under TFLM, and in how small a
tensor arena (the RAM a microcontroller must set aside for it)."""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np


def _interpreter(content: bytes, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(content, arena_size=arena)


@contextlib.contextmanager
def _quiet():
    """TFLM reports a failed allocation on the C stderr; the search below fails many on purpose."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved), os.close(null)


def _runs(content: bytes, arena: int, x: np.ndarray) -> bool:
    try:
        with _quiet():
            interp = _interpreter(content, arena)
            interp.set_input(x[None], 0)
            interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def arena_size(content: bytes, x: np.ndarray, step: int = 16) -> int:
    """Smallest arena (bytes, a multiple of `step`) in which TFLM allocates and invokes the graph on
    the input `x` (already in the graph's dtype): a search over sizes, so it does not depend on how
    a TFLM version prints its allocation log."""
    hi = max(4096, 2 * len(content))
    while not _runs(content, hi, x):
        hi *= 2
        if hi > 1 << 28:
            raise RuntimeError("TFLM does not run this graph in a 256 MiB arena (an unsupported op?)")
    lo = 0  # fails
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        lo, hi = (lo, mid) if mid > lo and _runs(content, mid, x) else (max(mid, lo + 1), hi)
    return hi


def run(content: bytes, x: np.ndarray, n_outputs: int, arena: int | None = None) -> list[np.ndarray]:
    """The graph's raw outputs, in the model's output order, for one input `x` in the graph's dtype."""
    interp = _interpreter(content, arena or max(1 << 20, 10 * len(content)))
    interp.set_input(x[None], 0)
    interp.invoke()
    return [np.array(interp.get_output(i))[0] for i in range(n_outputs)]


class MicroRunner:
    """A TFLiteRunner (same quantization helpers and output names) whose inference runs on the
    tflite-micro interpreter: TFLM's portable kernels, the code a microcontroller runs."""

    def __init__(self, content: bytes, arena: int | None = None):
        from common.export import TFLiteRunner

        meta = TFLiteRunner(content)  # names, order and quantization of the inputs and outputs
        self.input, self.outputs = meta.input, meta.outputs
        self.quantize, self.dequantize = meta.quantize, meta.dequantize
        self._index = {name: i for i, name in enumerate(meta.output_order)}
        self.interpreter = _interpreter(content, arena or max(1 << 20, 10 * len(content)))

    def invoke(self, x: np.ndarray) -> None:
        self.interpreter.set_input(x[None], 0)
        self.interpreter.invoke()

    def get(self, name: str) -> np.ndarray:
        return np.asarray(self.interpreter.get_output(self._index[name]))[0]

    def raw(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.invoke(x)
        return {k: self.get(k) for k in self._index}

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {k: self.dequantize(k, v) for k, v in self.raw(self.quantize(x)).items()}
