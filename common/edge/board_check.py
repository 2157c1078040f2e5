"""The early-exit firmware of a model, measured and checked: its exported sources (`edge.sources`: the k + 1 int8
segments, the deployed thresholds, one arena) built into a release and a profiled firmware, and what the emulated
board printed compared sample by sample with the Python int8 runtime on the same inputs (common/edge/runtime.py,
TFLM backend); the baseline goes the same way, as a model with no early exit.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import files
from ..evaluation import signals
from . import sources, toolchain
from .export import TFLiteRunner, segment_names
from .ops import layer_macs
from .runtime import MultiExitRuntime

COMPARED = ("each sample's exit, class and every int8 byte the segments it ran output (each exit's scores and "
            "each feature map handed over, compared by their FNV-1a hash, firmware/bench.cc)")


KEYS = ("exit", "label", "bytes_fnv1a")  # what each sample's firmware line is compared on (the baseline: not "exit")
MONITOR_KEYS = ("status", "audited", "statistic")  # ... and under a field monitor
STATUS = {"watching": 1, "alarm": 2, "fallback": 3}  # trecx::Status


def agrees(got: dict, want: dict, keys: tuple[str, ...] = KEYS) -> bool:
    """Whether the firmware's line for one sample (`got`) matches the Python runtime's (`want`) on `keys`."""
    return all(got.get(k) == want[k] for k in keys)


def agreeing(got: list[dict], want: list[dict], key: str) -> int:
    """On how many samples the firmware and the Python runtime agree on `key`."""
    return sum(g.get(key) == w[key] for g, w in zip(got, want, strict=True))


def fnv1a(parts: list[np.ndarray]) -> str:
    """The 32-bit FNV-1a hash of the bytes of `parts` in order, as the firmware prints it (8 hex digits)."""
    h = 2166136261
    for b in b"".join(np.ascontiguousarray(p, dtype=np.int8).tobytes() for p in parts):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return f"{h:08x}"


def python_runtime(segments: list[bytes], rhos: list[float | None], x: np.ndarray, signal=None,
                   monitor=None) -> list[dict]:
    """Exit (0 .. k), class and output bytes' hash (`fnv1a`) of every sample from the Python int8 runtime on
    TFLM (`signal`: the exit signal, `evaluation.signals.Signal`; None: max softmax); under a field `monitor`
    (`evaluation.monitor.Monitor`), its status, audit and statistic (the double's bits in hex) too."""
    rt = MultiExitRuntime(segments, [float("inf") if r is None else r for r in rhos], backend="tflm", signal=signal,
                          monitor=monitor)
    out = []
    for r in x:
        trace: list[np.ndarray] = []
        p = rt(r, trace)
        out.append({"exit": rt.exits.index(p.exit), "label": p.label, "bytes_fnv1a": fnv1a(trace)})
        if monitor is not None:
            out[-1] |= {"status": STATUS[p.status], "audited": p.audited,
                        "statistic": struct.pack(">d", rt.monitor.state.statistic).hex()}
    return out


def on_board(segments: list[bytes], rhos: list[float | None], x: np.ndarray, libs: dict[bool, dict], cpu: str,
             work: Path, arena_bytes: int | None = None, timeout: float = 3600, limits: tuple[int, int] = (0, 0),
             note: str = "", signal=None, monitor=None) -> dict:
    """Export the model's sources (`edge.sources`), build them into a release firmware (`libs[False]`, the
    headline counts) and, given `libs[True]`, a profiled one (per-operator counts), run both on `x` and check that
    each fits the board (`limits`: flash and RAM bytes, 0 = the board's own). Cached in `work` by everything that
    goes in, so the baseline's firmware runs once for every variant of a task."""
    first = TFLiteRunner(segments[0])
    rows = np.stack([first.quantize(r).reshape(-1) for r in x])
    key = hashlib.blake2b(digest_size=8)
    for part in (*segments, repr(rhos).encode(), rows.tobytes(), repr(arena_bytes).encode(), cpu.encode(),
                 *(lib["dir"].name.encode() for lib in libs.values()), (toolchain.FIRMWARE / "bench.cc").read_bytes(),
                 *((toolchain.FIRMWARE / f).read_bytes() for f in sources.RUNNER)):
        key.update(part)
    if signals.other(signal) is not None:  # the same graphs and rhos exit elsewhere on its scores
        key.update(repr(signal.describe()).encode())
    if monitor is not None:  # it audits, and falls back after an alarm
        key.update(repr(monitor.describe()).encode())
    work = work / key.hexdigest()
    done = work / "board.json"
    if done.exists():
        return json.loads(done.read_text())
    spec = sources.write(segments, rhos, work / "sources", arena_bytes, note=note, signal=signal, monitor=monitor)
    (work / "samples.bin").write_bytes(np.ascontiguousarray(rows, dtype=np.int8).tobytes())
    board = toolchain.BOARDS[cpu]
    rec: dict = {"handover_bytes": spec.handover_bytes, "arena_bytes": spec.arena_bytes}
    for profiled, lib in sorted(libs.items()):
        kind = "profiled" if profiled else "release"
        elf = toolchain.build(work / "sources", lib, cpu, work / kind, len(rows), work / "samples.bin")
        mem = toolchain.memory(elf)
        toolchain.check_fits(mem, limits[0] or board.flash_bytes, limits[1] or board.ram_bytes,
                       f"the {kind} firmware ({len(segments)} graph(s))")
        rec[kind] = toolchain.emulate(elf, cpu, timeout) | mem
        # the arena sized exactly to what the board used: the RAM a firmware built with that size takes
        rec[kind]["ram_needed_bytes"] = mem["ram_bytes"] - spec.arena_bytes + rec[kind]["arena_used_bytes"]
    files.write_json(done, rec)
    return rec


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


def _layers(ops: list[dict], graph: bytes, runs: int, samples: int) -> list[dict]:
    """One segment's profiled operators per sample (over all samples) and per MAC (over the runs it had)."""
    macs = layer_macs(graph)
    return [{"index": o["index"], "op": o["op"], "instructions_per_sample": o["instructions"] / samples,
             "macs": macs.get(o["index"]),
             "instructions_per_mac": o["instructions"] / runs / macs[o["index"]] if macs.get(o["index"]) and runs
             else None} for o in ops]


def summarize(ee: dict, base: dict, expected: list[dict], expected_base: list[dict], cum_mflops: list[float],
              base_mflops: float, segments: list[bytes], baseline: bytes) -> dict:
    """The firmware's record from the early-exit and the baseline firmware runs (`on_board`): agreement with the
    Python runtime sample by sample, instructions per segment, of the early-exit firmware and of the baseline
    (release builds: the headline) and their cut beside the FLOPs cut on the same samples, the profiler's
    overhead, the per-operator and per-layer breakdown (profiled builds), and RAM and flash of both firmwares."""
    names = segment_names(len(segments) - 1)
    got, got_base, n = ee["release"]["samples"], base["release"]["samples"], len(ee["release"]["samples"])
    mismatches = [i for i, (g, b, e, eb) in enumerate(zip(got, got_base, expected, expected_base, strict=True))
                  if not agrees(g, e) or not agrees(b, eb, KEYS[1:])]
    exits = np.array([s["exit"] for s in got])
    cost = {kind: (np.array([sum(s["segments"]) for s in ee[kind]["samples"]]),
                   np.array([sum(s["segments"]) for s in base[kind]["samples"]])) for kind in ("release", "profiled")
            if kind in ee}
    ee_instr, base_instr = cost["release"]
    flops = np.asarray(cum_mflops, dtype=np.float64)[exits]  # each sample's MFLOPs
    instruction_cut = 100 * (1 - ee_instr.mean() / base_instr.mean())
    flops_cut = 100 * (1 - flops.mean() / base_mflops)
    runs = [int((exits >= i).sum()) for i in range(len(segments))]  # a segment runs when no earlier exit fired

    def when_run(samples: list[dict], i: int) -> float | None:
        t = [s["segments"][i] for s in samples if s["exit"] >= i]
        return float(np.mean(t)) if t else None

    rec = {
        "samples": n, "bit_exact": not mismatches, "mismatched_samples": mismatches[:20], "compared": COMPARED,
        "agree": {"exit": agreeing(got, expected, "exit"), "label": agreeing(got, expected, "label"),
                  "bytes": agreeing(got, expected, "bytes_fnv1a"),
                  "base_bytes": agreeing(got_base, expected_base, "bytes_fnv1a"),
                  "base_label": agreeing(got_base, expected_base, "label")},
        "exit_rate": float((exits < len(segments) - 1).mean()),
        "exit_rates": {name: float((exits == i).mean()) for i, name in enumerate(names)},
        "accuracy_note": "classes compared with the Python int8 runtime, not with labels",
        "instructions": {"per_segment_when_run": {name: when_run(got, i) for i, name in enumerate(names)},
                         "head": when_run(got, 0), "tail_when_run": when_run(got, len(segments) - 1),
                         "early_exit_firmware": float(ee_instr.mean()), "baseline": float(base_instr.mean())},
        "build": "release (BUILD_TYPE=release: no profiler, no logs), as a user's firmware",
        "instruction_cut_pct": instruction_cut, "flops_cut_pct": flops_cut,
        # what an exit can save is the tail: its share of the baseline's instructions against its share of FLOPs
        "tail_instruction_share": (when_run(got, len(segments) - 1) or 0) / base_instr.mean() if runs[-1] else None,
        "tail_flops_share": (cum_mflops[-1] - cum_mflops[-2]) / base_mflops,
        "instruction_to_flops_cut_ratio": instruction_cut / flops_cut if flops_cut else None,
        "instruction_to_flops_cut_ratio_ci95": ratio_interval(ee_instr, base_instr, flops, base_mflops),
        "arena_used_bytes": {"early_exit": ee["release"]["arena_used_bytes"],
                             "baseline": base["release"]["arena_used_bytes"]},
        "arena_bytes": {"early_exit": ee["arena_bytes"], "baseline": base["arena_bytes"]},
        "handover_bytes": ee["handover_bytes"],
        "flash_bytes": ee["release"]["flash_bytes"], "ram_bytes": ee["release"]["ram_needed_bytes"],
        "baseline_flash_bytes": base["release"]["flash_bytes"],
        "baseline_ram_bytes": base["release"]["ram_needed_bytes"],
        "ram_note": "static RAM (.data + .bss) of a release firmware whose one tensor arena is the size the board "
                    "used; the early-exit firmware's arena holds every segment, the feature map handed over is moved "
                    "in place (no copy buffer); the budget is the baseline's RAM + the largest hand-over map",
        "ram_within_baseline_plus_handover": bool(ee["release"]["ram_needed_bytes"]
                                                  <= base["release"]["ram_needed_bytes"] + ee["handover_bytes"]),
        "instructions_per_tick": ee["release"]["instructions_per_tick"]}
    if "profiled" not in ee:
        return rec
    p_ee, p_base = cost["profiled"]
    rec["profiled_instructions"] = {"early_exit_firmware": float(p_ee.mean()), "baseline": float(p_base.mean())}
    rec["profiler_overhead_pct"] = {"early_exit_firmware": 100 * (p_ee.mean() / ee_instr.mean() - 1),
                                    "baseline": 100 * (p_base.mean() / base_instr.mean() - 1)}
    per_layer = {name: _layers(ops, g, runs[i], n) for i, (name, ops, g) in
                 enumerate(zip(names, ee["profiled"]["ops"], segments, strict=True))}
    per_layer["baseline"] = _layers(base["profiled"]["ops"][0], baseline, n, n)
    rec |= {"per_layer_build": "release_with_logs with a profiler on every operator (overhead above)",
            "per_op": {name: per_op(ops, n, layer_macs(g), runs[i]) for i, (name, ops, g) in
                       enumerate(zip(names, ee["profiled"]["ops"], segments, strict=True))}
            | {"baseline": per_op(base["profiled"]["ops"][0], n, layer_macs(baseline), n)},
            "per_layer": per_layer, "costliest_layers": costliest_layers(per_layer),
            "by_exit_position": by_exit_position(per_layer["baseline"]),
            "instructions_per_mac": {g: mean_per_mac(v) for g, v in per_layer.items()}}
    return rec


def monitored(segments: list[bytes], rhos: list[float | None], x: np.ndarray, lib: dict, cpu: str, work: Path,
              monitor, signal=None, timeout: float = 3600) -> dict:
    """The field monitor on the board: the release firmware with and without `monitor` over the stream `x`,
    compared sample by sample with the Python runtime (exit, class, output bytes, the monitor's status, audit and
    statistic to the bit), and what the monitor costs there: flash, RAM, its own instructions per sample, and the
    audits' (the rest of the network on an audited early exit)."""
    libs = {False: lib}
    on = on_board(segments, rhos, x, libs, cpu, work, note="field monitor", signal=signal, monitor=monitor)["release"]
    off = on_board(segments, rhos, x, libs, cpu, work, note="field monitor off", signal=signal)["release"]
    want = python_runtime(segments, rhos, x, signal, monitor)
    keys = (*KEYS, *MONITOR_KEYS)
    got = on["samples"]
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not agrees(g, w, keys)]
    host_alarm = next((i for i, w in enumerate(want) if w["status"] == STATUS["alarm"]), -1)
    audit_extra = [sum(g["segments"]) - sum(o["segments"]) for g, o in zip(got, off["samples"], strict=True)
                   if g["audited"] and o["exit"] < len(segments) - 1 and g["status"] != STATUS["fallback"]]
    return {"samples": len(x), "bit_exact": not bad, "mismatched_samples": bad[:20],
            "compared": f"{COMPARED}; and the monitor's status, audit and statistic (the double's bits)",
            "alarm_sample_board": on["monitor"]["alarm_sample"], "alarm_sample_host": host_alarm,
            "counters_board": on["monitor"],
            "monitor_instructions_per_sample": float(np.mean([g["monitor"] for g in got])),
            "monitor_instructions_per_audit": float(np.mean([g["monitor"] for g in got if g["audited"]] or [0.0])),
            "audit_instructions_per_audited_early_exit": float(np.mean(audit_extra)) if audit_extra else None,
            "flash_bytes": on["flash_bytes"], "flash_bytes_without_monitor": off["flash_bytes"],
            "ram_bytes": on["ram_needed_bytes"], "ram_bytes_without_monitor": off["ram_needed_bytes"],
            "monitor_state_bytes": on["monitor"]["state_bytes"],
            "ram_note": "the runner holds its MonitorState (monitor_state_bytes) whether or not a monitor is given, "
                        "so both builds' static RAM holds it",
            "instructions_per_tick": on["instructions_per_tick"]}
