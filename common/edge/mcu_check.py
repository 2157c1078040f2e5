"""The early-exit firmware of a deployed model, measured and checked: its program built from the deployed int8
graphs and rho (`mcu.Program`), and what the emulated board printed compared sample by sample with the Python
int8 runtime on the same inputs (common/edge/runtime.py, TFLM backend).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from common.edge import mcu
from common.edge.export import TFLiteRunner
from common.edge.runtime import EarlyExitRuntime, SingleRuntime

ARENA_MARGIN = 16 * 1024  # over the x86 TFLM arena (64-bit pointers: the 32-bit board needs less)


def program(graphs: dict[str, bytes], rho: float | None, x: np.ndarray, arenas: dict[str, int]) -> mcu.Program:
    """The firmware's program: the int8 graphs, the exit rule as the runtime computes it, the samples
    quantized for the head and for the baseline, arenas from the deployment's measured sizes."""
    # the exit rule and the hand-over exactly as the Python runtime computes them
    rt = EarlyExitRuntime(graphs["head_int8"], graphs["tail_int8"], float("inf") if rho is None else rho)
    head, tail, base = rt.head, rt.tail, TFLiteRunner(graphs["baseline_int8"])
    (s_out, z_out), (s_in, z_in) = head.outputs["features"]["quantization"], tail.input["quantization"]
    return mcu.Program(
        head=graphs["head_int8"], tail=graphs["tail_int8"], baseline=graphs["baseline_int8"],
        threshold=rt.thresholds[0],
        head_exit=head.output_order.index("early_exit"), head_features=head.output_order.index("features"),
        requantize=(s_out, z_out, s_in, z_in) if rt.requantize[0] else None,
        samples=np.stack([head.quantize(r).reshape(-1) for r in x]),
        base_samples=np.stack([base.quantize(r).reshape(-1) for r in x]),
        classes=int(np.prod(head.outputs["early_exit"]["shape"])),
        feature_bytes=int(np.prod(head.outputs["features"]["shape"])),
        arenas=tuple(int(arenas[f"{g}_int8"]) + ARENA_MARGIN for g in ("head", "tail", "baseline")))


def python_runtime(graphs: dict[str, bytes], rho: float | None, x: np.ndarray) -> list[dict]:
    """Exit, class and baseline class of every sample from the Python int8 runtime on TFLM."""
    rt = EarlyExitRuntime(graphs["head_int8"], graphs["tail_int8"], float("inf") if rho is None else rho,
                          backend="tflm")
    base = SingleRuntime(graphs["baseline_int8"], backend="tflm")
    out = []
    for r in x:
        p = rt(r)
        out.append({"exit": p.exit == "early_exit", "label": p.label, "base_label": base(r).label})
    return out


def per_op(ops: list[dict], samples: int) -> list[dict]:
    """Instructions per sample by operator type, largest first (every run of the graph counted)."""
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for o in ops:
        total[o["op"]] += o["instructions"]
        count[o["op"]] += 1
    return sorted(({"op": k, "layers": count[k], "instructions_per_sample": v / samples} for k, v in total.items()),
                  key=lambda r: -r["instructions_per_sample"])


def summarize(run: dict, expected: list[dict], mflops: dict[str, float]) -> dict:
    """The firmware's record: agreement with the Python runtime, mean instructions of each graph and of the
    early-exit firmware against the baseline's, that cut beside the FLOPs cut on the same samples, and the
    per-operator breakdown of each graph."""
    got, n = run["samples"], len(run["samples"])
    keys = ("exit", "label", "base_label")
    mismatches = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if any(g[k] != e[k] for k in keys)]
    exited = np.array([s["exit"] for s in got])
    ee = np.array([s["head"] + s["tail"] for s in got])
    base = np.array([s["baseline"] for s in got])
    flops_ee = float(np.where(exited, mflops["early_exit"], mflops["final"]).mean())
    instruction_cut = 100 * (1 - ee.mean() / base.mean())
    flops_cut = 100 * (1 - flops_ee / mflops["baseline"])
    tails = [s["tail"] for s in got if not s["exit"]]
    return {
        "samples": n, "bit_exact": not mismatches, "mismatched_samples": mismatches[:20],
        "agree": {k: int(sum(g[k] == e[k] for g, e in zip(got, expected, strict=True))) for k in keys},
        "exit_rate": float(exited.mean()),
        "accuracy_note": "classes compared with the Python int8 runtime, not with labels",
        "instructions": {"head": float(np.mean([s["head"] for s in got])),
                         "tail_when_run": float(np.mean(tails)) if tails else None,
                         "early_exit_firmware": float(ee.mean()), "baseline": float(base.mean())},
        "instruction_cut_pct": instruction_cut, "flops_cut_pct": flops_cut,
        # what an exit can save is the tail: its share of the baseline's instructions against its share of FLOPs
        # (early layers at high resolution and few channels cost more instructions per FLOP than late ones)
        "tail_instruction_share": float(np.mean(tails)) / base.mean() if tails else None,
        "tail_flops_share": (mflops["final"] - mflops["early_exit"]) / mflops["baseline"],
        "instruction_to_flops_cut_ratio": instruction_cut / flops_cut if flops_cut else None,
        "per_op": {g: per_op(run["ops"][g], n) for g in ("head", "tail", "baseline")},
        "per_layer": {g: [{"index": o["index"], "op": o["op"], "instructions_per_sample": o["instructions"] / n}
                          for o in run["ops"][g]] for g in ("head", "tail", "baseline")},
        "arena_used_bytes": run["arena_used_bytes"], "instructions_per_tick": run["instructions_per_tick"]}
