"""C++ sources of an early-exit model for a user's own firmware: the k + 1 int8 segment graphs as arrays, the
exit thresholds in int8 units and the hand-over rules (`trecx_model.h/.cc`, generated), beside the runner over
TFLite Micro's MicroInterpreter that runs them in one tensor arena (`trecx_runner.h/.cc`, copied as they are
from common/edge/firmware/). They build against any TFLM tree (docs/deployment.md, "In your own firmware");
the project's benchmark firmware is built from exactly these files (`common.edge.toolchain`).

A model with no early exit (one graph, no threshold) exports the same way: the baseline firmware uses it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import files
from ..console import quiet
from ..errors import ModelFileError, TrecxError
from ..evaluation import monitor as field_monitor
from ..evaluation import signals
from .export import TFLiteRunner
from .runtime import MultiExitRuntime
from .toolchain import resolver_calls

RUNNER = ("trecx_runner.h", "trecx_runner.cc")
FIRMWARE = Path(__file__).with_name("firmware")
NEVER = 1e300  # the threshold of an exit that never fires (no rho certified: the full network runs)
MAX_SEGMENTS = 8  # trecx::kMaxSegments
ARENA_MARGIN = 16 * 1024  # over arena_bound: scratch buffers of kernels it does not count


@dataclass(frozen=True)
class Spec:
    """What the generated sources hold, read off the graphs and the runtime's own exit rule."""

    segments: list[dict]  # per segment: exit_output, features_output, feature_bytes, threshold, requantize...
    classes: int
    input_bytes: int
    handover_bytes: int  # the largest feature map handed over (moved in place in the arena: no copy buffer)
    arena_bytes: int
    ops: list[str]  # the MicroMutableOpResolver calls the graphs need
    signal: str = "max_softmax"  # the exit signal (`evaluation.signals`): else per early exit an ExitSignal
    monitor: dict | None = None  # the field monitor's MonitorSpec (`evaluation.monitor`), as compared on the board


def check_segments(segments: list[bytes], names: list[str] | None = None) -> list[TFLiteRunner]:
    """The segments as runners, or a one-line ModelFileError naming the graph at fault: a float graph where int8
    is expected, too many segments, or segments of different models (one's hand-over map is not what the next
    reads, or their classes differ)."""
    names = names or [f"segment {i}" for i in range(len(segments))]
    if not 1 <= len(segments) <= MAX_SEGMENTS:
        raise ModelFileError(f"{len(segments)} graphs: the runner takes 1 to {MAX_SEGMENTS} segments")
    runners = []
    for name, graph in zip(names, segments, strict=True):
        try:
            r = TFLiteRunner(graph)
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"{name} is not a TFLite graph: {str(e).splitlines()[0][:120]}") from None
        kinds = {r.input["dtype"], *(o["dtype"] for o in r.outputs.values())}
        if kinds != {np.int8}:
            raise ModelFileError(f"{name} is not a full-integer int8 graph (its input and outputs are "
                                 f"{', '.join(sorted(np.dtype(k).name for k in kinds))}): export it with "
                                 "api.export_int8 or python -m common deploy")
        last = len(runners) == len(segments) - 1
        exits = [k for k in r.outputs if k != "features"]
        if len(exits) != 1 or ("features" in r.outputs) == last:
            raise ModelFileError(f"{name} has outputs {sorted(r.outputs)}: a segment has one exit and, except the "
                                 "last, the 'features' map the next one reads")
        runners.append(r)
    for (a, na), (b, nb) in zip(zip(runners, names, strict=True), list(zip(runners, names, strict=True))[1:],
                                strict=False):
        want, got = list(b.input["shape"][1:]), list(a.outputs["features"]["shape"][1:])
        if want != got:
            raise ModelFileError(f"{nb} reads a {want} map but {na} hands over {got}: the graphs are of different "
                                 "models (or out of order)")
    classes = {int(np.prod(r.outputs[_exit(r)]["shape"])) for r in runners}
    if len(classes) > 1:
        raise ModelFileError(f"the graphs' exits have {sorted(classes)} classes: they are of different models")
    return runners


def arena_bound(graph: bytes) -> int:
    """An upper bound of the tensor arena a graph needs under TFLM, read off the graph: every activation at once
    (no reuse), plus TFLM's bookkeeping per tensor and per operator. Safe, not tight: a firmware run reports what
    the board used (`arena_used_bytes`). Read off the graph rather than searched with the tflite-micro Python
    interpreter, which crashes on some graphs (keras.applications' MobileNet tail) when an arena is too small."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet((2,)):
        it = Interpreter(model_content=graph)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    live = {i for o in ops for i in o["outputs"]} | {d["index"] for d in it.get_input_details()}
    size = sum(int(np.prod(tensors[i]["shape"])) * np.dtype(tensors[i]["dtype"]).itemsize for i in live if i in tensors)
    return int(size + 256 * len(tensors) + 2048 * len(ops))


def _exit(r: TFLiteRunner) -> str:
    return next(k for k in r.outputs if k != "features")


def spec(segments: list[bytes], rhos: list[float | None] | None, arena_bytes: int | None = None,
         names: list[str] | None = None, signal: signals.Signal | None = None,
         monitor: field_monitor.Monitor | None = None) -> Spec:
    """The sources' contents for `segments` and one threshold per early exit (None: that exit never fires).
    The thresholds and hand-overs are the Python runtime's own (`MultiExitRuntime`), so the firmware exits
    exactly where it does. `arena_bytes`: the one arena's size; by default every segment's `arena_bound`,
    summed, plus a margin (a firmware run reports what it really uses). `signal`: another exit signal than max
    softmax; each early exit then carries its integer tables and threshold (`signal` in its row). `monitor`: the
    field monitor (with its level), its factors, alarm and fallback thresholds as the runtime compares them."""
    runners = check_segments(segments, names)
    rhos = list(rhos or [])
    if len(rhos) != len(segments) - 1:
        raise TrecxError(f"{len(segments)} graphs have {len(segments) - 1} early exits but {len(rhos)} thresholds "
                         f"were given ({rhos})")
    rt = MultiExitRuntime(segments, [float("inf") if r is None else float(r) for r in rhos], signal=signal,
                          monitor=monitor)
    out, handover = [], 0
    for i, r in enumerate(runners):
        row = {"exit_output": r.output_order.index(_exit(r)), "features_output": -1, "feature_bytes": 0,
               "threshold": NEVER, "requantize": False, "scale_out": 1.0, "zero_out": 0, "scale_in": 1.0,
               "zero_in": 0}
        if i + 1 < len(runners):
            (s_out, z_out), (s_in, z_in) = r.outputs["features"]["quantization"], runners[i + 1].input["quantization"]
            t = rt.thresholds[i]
            row |= {"features_output": r.output_order.index("features"),
                    "feature_bytes": int(np.prod(r.outputs["features"]["shape"])),
                    "threshold": float(t) if np.isfinite(t) else NEVER, "requantize": bool(rt.requantize[i]),
                    "scale_out": float(s_out), "zero_out": int(z_out), "scale_in": float(s_in), "zero_in": int(z_in)}
            if rt.signal is not None:
                row["signal"] = {"zero": rt.zeros[i], "threshold": int(rt.int_thresholds[i]),
                                 **{k: None if v is None else [int(x) for x in v] for k, v in rt.tables[i].items()}}
            handover = max(handover, row["feature_bytes"])
        out.append(row)
    if arena_bytes is None:
        arena_bytes = sum(map(arena_bound, segments)) + ARENA_MARGIN

    first = runners[0]
    return Spec(out, int(np.prod(first.outputs[_exit(first)]["shape"])), int(np.prod(first.input["shape"])),
                handover, int(arena_bytes), resolver_calls(segments),
                "max_softmax" if rt.signal is None else rt.signal.name, _monitor(rt))


def _monitor(rt: MultiExitRuntime) -> dict | None:
    """The runtime's monitor as the MonitorSpec's fields (the fallback: None for the full network)."""
    if rt.monitor is None:
        return None
    m, watch = rt.monitor.spec, rt.monitor
    units, ints = rt.fallback()
    return {"seed": m.seed, "audit_cut": m.audit_cut, "up": [u for u, _ in watch.up_down],
            "down": [d for _, d in watch.up_down], "alarm_at": watch.threshold,
            "fallback": None if m.fallback is None else [float(u) for u in units],
            "fallback_signal": None if m.fallback is None or ints is None else [int(v) for v in ints],
            "settings": m.describe()}


def _monitor_c(g: dict) -> list[str]:
    """The MonitorSpec and its arrays, as C++ (doubles written so that they read back to the same bits)."""
    def doubles(v):
        return ", ".join(repr(float(x)) for x in v)

    lines = [f"// the field monitor: {g['settings']}",
             f"const double kMonitorUp[{len(g['up'])}] = {{{doubles(g['up'])}}};",
             f"const double kMonitorDown[{len(g['down'])}] = {{{doubles(g['down'])}}};"]
    refs = ["nullptr", "nullptr"]
    if g["fallback"] is not None:
        lines.append(f"const double kMonitorFallback[{len(g['fallback'])}] = {{{doubles(g['fallback'])}}};")
        refs[0] = "kMonitorFallback"
    if g["fallback_signal"] is not None:
        vals = ", ".join(f"{v}LL" for v in g["fallback_signal"])
        lines.append(f"const int64_t kMonitorFallbackSignal[{len(g['fallback_signal'])}] = {{{vals}}};")
        refs[1] = "kMonitorFallbackSignal"
    return [*lines, f"const trecx::MonitorSpec kMonitor = {{{g['seed']}u, {g['audit_cut']}ULL, {len(g['up'])}, "
            f"kMonitorUp, kMonitorDown, {g['alarm_at']!r}, {refs[0]}, {refs[1]}}};", ""]


def _c_array(name: str, data: bytes) -> str:
    rows = [",".join(str(b) for b in data[i:i + 32]) for i in range(0, len(data), 32)]
    return f"alignas(16) const unsigned char {name}[{len(data)}] = {{\n" + ",\n".join(rows) + "};\n"


def _f32(x: float) -> str:
    return f"{np.float32(x)!r}".replace("np.float32(", "").rstrip(")") + "f"


def _signal_c(i: int, g: dict) -> list[str]:
    """An early exit's ExitSignal and its tables, as C++."""
    lines, refs = [], []
    for key in ("T1", "T2", "TS", "TR"):
        if g[key] is None:
            refs.append("nullptr")
            continue
        if max(map(abs, g[key])) >= 1 << 31:
            raise TrecxError(f"exit {i}'s {key} table overflows int32: the signal's weights are too large")
        rows = [",".join(map(str, g[key][j:j + 16])) for j in range(0, len(g[key]), 16)]
        lines.append(f"const int32_t kSignal{i}{key}[{len(g[key])}] = {{\n" + ",\n".join(rows) + "};")
        refs.append(f"kSignal{i}{key}")
    return [*lines, f"const trecx::ExitSignal kSignal{i} = {{{', '.join(refs)}, {g['zero']}, "
            f"{g['threshold']}LL}};", ""]


def write(segments: list[bytes], rhos: list[float | None] | None, out: Path, arena_bytes: int | None = None,
          namespace: str = "trecx_model", names: list[str] | None = None, note: str = "",
          signal: signals.Signal | None = None, monitor: field_monitor.Monitor | None = None) -> Spec:
    """Write trecx_model.h/.cc (namespace `namespace`) and the runner into `out`; returns what they hold.
    Every file is written whole (a failed export leaves no half file)."""
    s = spec(segments, rhos, arena_bytes, names, signal, monitor)
    if not namespace.isidentifier():
        raise TrecxError(f"--namespace must be a C++ identifier, got '{namespace}'")
    header = [f"// Generated by trecx (common/edge/sources.py): do not edit. {note}".rstrip(), "#pragma once", "",
              '#include "trecx_runner.h"', "", f"namespace {namespace} {{", "",
              f"constexpr int kSegments = {len(segments)};  // {len(segments) - 1} early exit(s) + the final exit",
              f"constexpr int kClasses = {s.classes};",
              f"constexpr int kInputBytes = {s.input_bytes};  // int8, quantized as segment 0's input",
              f"constexpr int kArenaBytes = {s.arena_bytes};  // the one tensor arena of every segment",
              "extern const trecx::ModelSpec kModel;", "", f"}}  // namespace {namespace}", ""]
    body = [f"// Generated by trecx (common/edge/sources.py): do not edit. {note}".rstrip(),
            '#include "trecx_model.h"', "", f"namespace {namespace} {{", "namespace {", ""]
    body += [_c_array(f"kGraph{i}", g) for i, g in enumerate(segments)]
    for i, r in enumerate(s.segments):
        if "signal" in r:
            body += [f"// exit {i}'s {s.signal} signal", *_signal_c(i, r["signal"])]
    if s.monitor is not None:
        body += _monitor_c(s.monitor)
    body += ["void AddOps(trecx::OpResolver& r) {", *(f"  r.{c}();" for c in s.ops), "}", "",
             "// graph, exit output, features output, feature bytes, threshold (int8 units), requantize,",
             "// scale_out, scale_in, zero_out, zero_in, exit signal",
             f"const trecx::Segment kSegmentList[{len(segments)}] = {{"]
    for i, r in enumerate(s.segments):
        body.append(f"    {{kGraph{i}, {r['exit_output']}, {r['features_output']}, {r['feature_bytes']}, "
                    f"{r['threshold']!r}, {str(r['requantize']).lower()}, {_f32(r['scale_out'])}, "
                    f"{_f32(r['scale_in'])}, {r['zero_out']}, {r['zero_in']}, "
                    f"{'&kSignal' + str(i) if 'signal' in r else 'nullptr'}}},")
    body += ["};", "", "}  // namespace", "",
             "const trecx::ModelSpec kModel = {kSegments, kSegmentList, kClasses, kInputBytes, AddOps"
             f"{', &kMonitor' if s.monitor is not None else ''}}};", "",
             f"}}  // namespace {namespace}", ""]
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("trecx_model.h", "\n".join(header)), ("trecx_model.cc", "\n".join(body))):
        with files.atomic(out / name) as tmp:
            tmp.write_text(text)
    for name in RUNNER:
        with files.atomic(out / name) as tmp:
            shutil.copyfile(FIRMWARE / name, tmp)
    return s
