"""The tflite-micro Python interpreter: does an int8 graph run under TFLM, and in how small a
tensor arena (the RAM a microcontroller must set aside for it)."""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from .export import TFLiteRunner


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
    """Whether the graph allocates and runs in `arena` bytes; tried in a forked child, since TFLM's Python
    interpreter crashes the process (SIGSEGV) on some arenas too small for a graph instead of reporting them."""
    pid = os.fork()
    if pid == 0:  # the child: only TFLM runs here
        ok = False
        try:
            with _quiet():
                interp = _interpreter(content, arena)
                interp.set_input(x[None], 0)
                interp.invoke()
            ok = True
        except (RuntimeError, ValueError):
            pass
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


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


class MicroRunner(TFLiteRunner):
    """A TFLiteRunner (same names, quantization helpers, `raw` and `__call__`) whose inference runs
    on the tflite-micro interpreter: TFLM's portable kernels, the code a microcontroller runs."""

    def __init__(self, content: bytes, arena: int | None = None):
        super().__init__(content)  # names, order and quantization of the inputs and outputs
        self._index = {name: i for i, name in enumerate(self.output_order)}
        self.micro = _interpreter(content, arena or max(1 << 20, 10 * len(content)))

    def invoke(self, x: np.ndarray) -> None:
        self.micro.set_input(x[None], 0)
        self.micro.invoke()

    def get(self, name: str) -> np.ndarray:
        return np.asarray(self.micro.get_output(self._index[name]))[0]
