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
GRAPHS = ("head", "tail", "baseline")
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


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


def layer_macs(graph: bytes) -> dict[int, int]:
    """Multiply-accumulates of each convolution and dense operator of an int8 graph, by operator index (what an
    instruction count is divided by to compare kernels: the FLOPs counter's MACs, read off the graph)."""
    from ai_edge_litert.interpreter import Interpreter

    from common.console import quiet

    with quiet((2,)):
        it = Interpreter(model_content=graph)
    shape = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    out = {}
    for o in it._get_ops_details():
        if o["op_name"] not in MAC_OPS:
            continue
        y, w = shape[o["outputs"][0]], shape[o["inputs"][1]]
        if o["op_name"] == "CONV_2D":  # filter (out, kh, kw, in): every output element sums kh*kw*in products
            out[o["index"]] = int(np.prod(y)) * int(np.prod(w[1:]))
        elif o["op_name"] == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out)
            out[o["index"]] = int(np.prod(y)) * w[1] * w[2]
        else:  # FULLY_CONNECTED, filter (out, in)
            out[o["index"]] = int(np.prod(y)) * w[1]
    return out


def per_op(ops: list[dict], samples: int, macs: dict[int, int] | None = None, runs: int = 0) -> list[dict]:
    """Instructions per sample by operator type, largest first (`ops`: each layer's instructions summed over the
    graph's `runs`), and per MAC where the operator has MACs."""
    total: dict[str, float] = defaultdict(float)
    work: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for o in ops:
        total[o["op"]] += o["instructions"]
        work[o["op"]] += (macs or {}).get(o["index"], 0) * runs
        count[o["op"]] += 1
    return sorted(({"op": k, "layers": count[k], "instructions_per_sample": v / samples,
                    "instructions_per_mac": v / work[k] if work[k] else None} for k, v in total.items()),
                  key=lambda r: -r["instructions_per_sample"])


def shared_layers(head: list[dict], baseline: list[dict]) -> int:
    """How many leading layers the head shares with the baseline (same operator, same MACs): the exit's place."""
    n = 0
    for h, b in zip(head, baseline, strict=False):
        if h["op"] != b["op"] or h.get("macs") != b.get("macs"):
            break
        n += 1
    return n


def costliest_layers(per_layer: dict[str, list[dict]], top: int = 3) -> list[str]:
    """The baseline layers before the exit whose instructions most exceed what their MACs would cost at the
    rate of the baseline's layers after it: the kernels that keep the instruction cut below the FLOPs cut."""
    base = per_layer["baseline"]
    cut = shared_layers(per_layer["head"], base)
    rate = mean_per_mac(base[cut:])
    if not rate:
        return []
    excess = sorted(((r["instructions_per_sample"] - rate * r["macs"], r) for r in base[:cut]
                     if r["instructions_per_mac"]), key=lambda e: -e[0])
    total = sum(max(e, 0) for e, _ in excess)
    return [f"{r['op']} #{r['index']}: {r['instructions_per_mac']:.1f} instr./MAC against {rate:.1f} after the exit "
            f"({100 * e / total:.0f}% of the head's excess)" for e, r in excess[:top] if e > 0]


def by_exit_position(base: list[dict], min_tail: float = 0.1) -> list[dict]:
    """For an exit after each baseline layer (leaving at least `min_tail` of the MACs to the tail): the tail's
    share of the baseline's instructions over its share of the MACs, about the ratio of the instruction cut to
    the FLOPs cut an exit there gets at any exit rate (the exit block's own cost aside)."""
    instr = np.array([r["instructions_per_sample"] for r in base])
    macs = np.array([r["macs"] or 0 for r in base], dtype=float)
    out = []
    for k in range(len(base) - 1):
        tail_macs = float(macs[k + 1:].sum() / macs.sum())
        if tail_macs >= min_tail:
            tail_instr = float(instr[k + 1:].sum() / instr.sum())
            out.append({"after_layer": base[k]["index"], "op": base[k]["op"], "tail_instruction_share": tail_instr,
                        "tail_mac_share": tail_macs, "ratio": tail_instr / tail_macs})
    return out


def mean_per_mac(layers: list[dict]) -> float | None:
    """Instructions per MAC over a graph's convolution and dense layers (MAC-weighted)."""
    done = [r for r in layers if r["instructions_per_mac"]]
    work = sum(r["macs"] for r in done)
    return sum(r["instructions_per_mac"] * r["macs"] for r in done) / work if work else None


def ratio_interval(ee: np.ndarray, base: np.ndarray, flops: np.ndarray, flops_base: float,
                   rounds: int = 2000, seed: int = 0) -> list[float] | None:
    """95% interval of the instruction cut / FLOPs cut ratio over resampled samples (other test samples
    exit at another rate: how far that moves the ratio)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ee), (rounds, len(ee)))
    flops_cut = 1 - flops[idx].mean(axis=1) / flops_base
    ok = flops_cut > 0
    if not ok.any():
        return None
    ratio = (1 - ee[idx].mean(axis=1) / base[idx].mean(axis=1))[ok] / flops_cut[ok]
    return [float(v) for v in np.percentile(ratio, [2.5, 97.5])]


def summarize(run: dict, expected: list[dict], mflops: dict[str, float],
              graphs: dict[str, bytes] | None = None) -> dict:
    """The firmware's record: agreement with the Python runtime, mean instructions of each graph and of the
    early-exit firmware against the baseline's, that cut beside the FLOPs cut on the same samples, and the
    per-operator and per-layer breakdown of each graph (per MAC too, given the `graphs`)."""
    got, n = run["samples"], len(run["samples"])
    keys = ("exit", "label", "base_label")
    mismatches = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if any(g[k] != e[k] for k in keys)]
    exited = np.array([s["exit"] for s in got])
    ee = np.array([s["head"] + s["tail"] for s in got])
    base = np.array([s["baseline"] for s in got])
    flops = np.where(exited, mflops["early_exit"], mflops["final"])  # each sample's MFLOPs
    flops_ee = float(flops.mean())
    instruction_cut = 100 * (1 - ee.mean() / base.mean())
    flops_cut = 100 * (1 - flops_ee / mflops["baseline"])
    tails = [s["tail"] for s in got if not s["exit"]]
    macs = {g: layer_macs(graphs[f"{g}_int8"]) if graphs else {} for g in GRAPHS}
    runs = {"head": n, "tail": len(tails), "baseline": n}  # the board prints each layer's sum over all runs
    per_layer = {g: [{"index": o["index"], "op": o["op"], "instructions_per_sample": o["instructions"] / n,
                      "macs": macs[g].get(o["index"]),
                      "instructions_per_mac": o["instructions"] / runs[g] / macs[g][o["index"]]
                      if macs[g].get(o["index"]) and runs[g] else None} for o in run["ops"][g]] for g in GRAPHS}
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
        "instruction_to_flops_cut_ratio_ci95": ratio_interval(ee, base, flops, mflops["baseline"]),
        "per_op": {g: per_op(run["ops"][g], n, macs[g], runs[g]) for g in GRAPHS},
        "per_layer": per_layer, "costliest_layers": costliest_layers(per_layer),
        "by_exit_position": by_exit_position(per_layer["baseline"]),
        "instructions_per_mac": {g: mean_per_mac(per_layer[g]) for g in GRAPHS},
        "arena_used_bytes": run["arena_used_bytes"], "instructions_per_tick": run["instructions_per_tick"]}
