"""An early-exit runtime: the head graph, rho, and the tail only when needed (or k exits, k + 1 graphs).

The same runtime serves float and int8 graphs (see common.edge.export), at batch 1 as on a device, on
ai-edge-litert ("litert") or on the tflite-micro interpreter ("tflm", int8 graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation import monitor as field_monitor
from ..evaluation import signals
from .export import TFLiteRunner
from .tflm import MicroRunner


@dataclass
class Prediction:
    label: int
    exit: str  # the exit it left at: "early_exit" (or "exit_<i>") or "final"
    probs: np.ndarray
    status: str = ""  # under a monitor: "watching", "alarm" (raised at this sample) or "fallback" (after it)
    audited: bool = False  # under a monitor: whether this sample was audited (when it left early, the rest ran)


def runner(content: bytes, backend: str = "litert", num_threads: int = 1):
    """A batch-1 runner of one graph on `backend` ("litert" or "tflm")."""
    if backend == "litert":
        return TFLiteRunner(content, num_threads)
    if backend == "tflm":

        return MicroRunner(content)
    raise ValueError(f"backend must be litert or tflm, got '{backend}'")


class MultiExitRuntime:
    """Run the graphs of a model split at its k exits (`export.split_at_exits`) one after another: segment i
    gives exit i's probabilities and the feature map the next segment reads; leave at the first exit whose
    max probability is >= its threshold (under another exit `signal`, whose integer score reaches its integer
    threshold, as the C++ runner computes it), the last segment (`final`) takes the rest. Confidences are compared
    in each graph's output dtype, and a feature map is read only when the next segment needs it, as a device
    would."""

    def __init__(self, segments: list[bytes], rhos: list[float], num_threads: int = 1, backend: str = "litert",
                 signal: signals.Signal | None = None, monitor: field_monitor.Monitor | None = None):
        if len(rhos) != len(segments) - 1:
            raise ValueError(f"{len(segments)} graphs need {len(segments) - 1} thresholds, got {len(rhos)}")
        self.graphs = list(segments)
        self.segments = [runner(g, backend, num_threads) for g in segments]
        self.exits = [next(k for k in seg.outputs if k != "features") for seg in self.segments]
        self.rhos = list(rhos)
        self.thresholds = self._units(self.rhos)  # each exit's rho in its int8 output's units (what a device compares)
        self.signal = signals.other(signal)
        # another exit signal: per early exit its integer tables, integer threshold and int8 zero point
        self.tables, self.int_thresholds, self.zeros, self.scored = [], [], [], []  # scored: (classes, scale)
        if self.signal is not None:
            signal.check_exits(len(self.rhos))
            for k, (seg, name) in enumerate(zip(self.segments, self.exits[:-1], strict=False)):
                scale, zero = seg.outputs[name]["quantization"]
                if not scale:
                    raise ValueError(f"the {signal.name} signal runs on int8 graphs; exit {name} outputs floats")
                classes = int(np.prod(seg.outputs[name]["shape"]))
                self.tables.append(signal.tables(k, classes, scale, zero))
                self.scored.append((classes, scale))
                self.zeros.append(int(zero))
            self.int_thresholds = self._int_units(self.rhos)
        self.requantize = []  # per hand-over: whether the next segment requantizes the map
        for a, b in zip(self.segments, self.segments[1:], strict=False):
            (s_out, z_out), (s_in, z_in) = a.outputs["features"]["quantization"], b.input["quantization"]
            # converted separately, two graphs agree on the hand-over scale only up to float rounding;
            # then the int8 map passes as it is, as on a device (float graphs: (0.0, 0) both)
            self.requantize.append(z_out != z_in or not np.isclose(s_out, s_in, rtol=1e-5, atol=0.0))
        self.monitor = None if monitor is None else field_monitor.Watch(monitor)
        if monitor is not None and monitor.fallback is not None and len(monitor.fallback) != len(self.rhos):
            raise ValueError(f"the monitor's fallback needs {len(self.rhos)} thresholds, got {len(monitor.fallback)}")
        self.runs = [0] * len(self.segments)  # how often each segment ran
        self.provenance = ""  # where the thresholds came from (`edge.board.provenance`), when a caller knows

    def _units(self, rhos: list[float]) -> list[float]:
        """Thresholds in each exit's int8 output units: q >= rho/scale + zero  <=>  (q - zero) * scale >= rho."""
        out = []
        for seg, name, rho in zip(self.segments, self.exits, rhos, strict=False):
            scale, zero = seg.outputs[name]["quantization"]
            out.append(rho / scale + zero if scale else rho)
        return out

    def __call__(self, x: np.ndarray, trace: list[np.ndarray] | None = None) -> Prediction:
        """The prediction for one input; `trace` (a list) receives the raw outputs in the order they came: each
        exit's scores and, when the sample goes on (or is audited), the feature map handed over (what the firmware
        check hashes). Under a monitor, an audited sample that left early runs on to the final exit, whose class
        the monitor compares with the early one; the prediction stays the early exit's."""
        audit = self.monitor is not None and self.monitor.draw()
        seg, left = self._first(x), None
        for i, threshold in enumerate(self.thresholds):
            out = seg.get(self.exits[i])
            if trace is not None:
                trace.append(out)
            if left is None and self.leaves(i, out, threshold):
                left = Prediction(int(out.argmax()), self.exits[i], seg.dequantize(self.exits[i], out))
                if not audit:
                    return self._status(left, False)
            if trace is not None:
                trace.append(seg.get("features"))
            seg = self._next(i)
        raw = seg.get(self.exits[-1])
        if trace is not None:
            trace.append(raw)
        final = seg.dequantize(self.exits[-1], raw)
        if left is None:
            left = Prediction(int(final.argmax()), self.exits[-1], final)
        if audit and self.monitor.observe(left.exit != self.exits[-1], left.label != int(final.argmax())):
            self._fall_back()
            return self._status(left, True, "alarm")
        return self._status(left, audit)

    def _status(self, p: Prediction, audited: bool, status: str = "") -> Prediction:
        if self.monitor is not None:
            p.status = status or ("fallback" if self.monitor.state.alarm else "watching")
            p.audited = audited
        return p

    def fallback(self) -> tuple[list[float], list[int] | None] | None:
        """The monitor's thresholds after an alarm, as compared: in int8 units, and under another exit signal as
        integer scores (None); the full network (every threshold infinite) when the monitor names none."""
        if self.monitor is None:
            return None
        rhos = self.monitor.spec.fallback
        rhos = [float("inf")] * len(self.rhos) if rhos is None else list(rhos)
        return self._units(rhos), None if self.signal is None else self._int_units(rhos)

    def _int_units(self, rhos: list[float]) -> list[int]:
        """Under another exit signal: each early exit's rho as the integer score it must reach."""
        return [self.signal.int_threshold(r, k, c, sc) for k, (r, (c, sc)) in
                enumerate(zip(rhos, self.scored, strict=True))]

    def _fall_back(self) -> None:
        self.thresholds, ints = self.fallback()
        if ints is not None:
            self.int_thresholds = ints

    def leaves(self, i: int, out: np.ndarray, threshold: float) -> bool:
        """Whether the sample leaves at early exit i: its largest score reaches the threshold, or under another
        signal, its integer score reaches the integer threshold (what the C++ runner compares)."""
        if self.signal is None:
            return bool(out.max() >= threshold)
        s = signals.integer_score(out.reshape(1, -1), self.tables[i], self.zeros[i])[0]
        return bool(s >= self.int_thresholds[i])

    def raw_exits(self, x: np.ndarray) -> list[np.ndarray]:
        """Every exit's raw output (int8 scores of int8 graphs), every segment run: `leaves` decides on them."""
        seg, out = self._first(x), []
        for i in range(len(self.segments)):
            out.append(seg.get(self.exits[i]).copy())
            if i + 1 < len(self.segments):
                seg = self._next(i)
        return out

    def exit_of(self, raws: list[np.ndarray]) -> int:
        """The exit (0 .. k) a sample with these raw outputs (`raw_exits`) leaves at."""
        return next((i for i, t in enumerate(self.thresholds) if self.leaves(i, raws[i], t)), len(self.thresholds))

    def all_exits(self, x: np.ndarray) -> list[np.ndarray]:
        """Every exit's probabilities, every segment run: for evaluation and threshold sweeps."""
        return [seg.dequantize(name, raw) for seg, name, raw in zip(self.segments, self.exits, self.raw_exits(x),
                                                                    strict=True)]

    def outputs(self, rows) -> list[np.ndarray]:
        """`all_exits` over `rows` (an array, or any iterable of rows such as a progress bar over one): each
        exit's probabilities stacked, (N, classes) per exit in exit order."""
        per_row = [self.all_exits(r) for r in rows]
        return [np.stack([r[i] for r in per_row]) for i in range(len(self.segments))]

    def _first(self, x: np.ndarray):
        seg = self.segments[0]
        seg.invoke(seg.quantize(x))
        self.runs[0] += 1
        return seg

    def _next(self, i: int):
        """Segment i + 1 on segment i's feature map, requantized only when the two graphs' scales differ."""
        feats, nxt = self.segments[i].get("features"), self.segments[i + 1]
        if self.requantize[i]:
            feats = nxt.quantize(self.segments[i].dequantize("features", feats))
        nxt.invoke(feats)
        self.runs[i + 1] += 1
        return nxt


class SingleRuntime:
    """A one-graph model (the baseline) behind the same interface."""

    def __init__(self, model: bytes, num_threads: int = 1, backend: str = "litert"):
        self.model = runner(model, backend, num_threads)

    def __call__(self, x: np.ndarray) -> Prediction:
        self.model.invoke(self.model.quantize(x))
        p = self.model.dequantize("final", self.model.get("final"))
        return Prediction(int(p.argmax()), "final", p)


def exit_quantization(graphs) -> list[tuple[float, int]]:
    """Each early exit's int8 output (scale, zero) of int8 graphs (or their runtime): what `signals.Signal.scores`
    needs to score their outputs as a device does."""
    rt = graphs if isinstance(graphs, MultiExitRuntime) else MultiExitRuntime(list(graphs), [0.0] * (len(graphs) - 1))
    return [(float(seg.outputs[name]["quantization"][0]), int(seg.outputs[name]["quantization"][1]))
            for seg, name in zip(rt.segments, rt.exits[:-1], strict=False)]


def exit_probs(graphs, x, backend: str = "tflm") -> list[np.ndarray]:
    """Every exit's probabilities on the rows of x (an array or any iterable of rows), as they run: from int8
    graphs on `backend` (TFLM by default: the kernels a firmware runs and is checked against), or from a
    `MultiExitRuntime` on its own backend."""
    rt = graphs if isinstance(graphs, MultiExitRuntime) else MultiExitRuntime(list(graphs), [0.0] * (len(graphs) - 1),
                                                                             backend=backend)
    return rt.outputs(x)
