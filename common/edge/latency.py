"""Measured batch-1 latency of the int8 early-exit runtime against the int8 baseline, interleaved sample by
sample in a random order so that a noisy machine slows both alike (the `benchmark` command)."""

from __future__ import annotations

import itertools
import time

import numpy as np
from tqdm import tqdm

from .deployment import segments_of
from .export import segment_names
from .runtime import MultiExitRuntime, SingleRuntime, runner


def timed(fn, x: np.ndarray) -> tuple[float, object]:
    t = time.perf_counter_ns()
    result = fn(x)
    return (time.perf_counter_ns() - t) / 1e3, result


def stage_latency(graphs: dict[str, bytes], x: np.ndarray, backend: str, threads: int) -> dict[str, float]:
    """Mean over samples of the fastest of 3 invokes (µs) of each int8 graph alone (every segment and the
    baseline), inputs quantized beforehand, round robin."""
    segs = segments_of(graphs)
    names = segment_names(len(segs) - 1)
    runners = {n: runner(g, backend, threads) for n, g in zip(names, segs, strict=True)}
    runners["baseline"] = runner(graphs["baseline_int8"], backend, threads)
    inputs = {names[0]: [runners[names[0]].quantize(r) for r in x],
              "baseline": [runners["baseline"].quantize(r) for r in x]}
    for prev, name in itertools.pairwise(names):
        a, b = runners[prev], runners[name]
        inputs[name] = [b.quantize(a.dequantize("features", a.raw(r)["features"])) for r in inputs[prev]]
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(len(x)):
        for k, r in runners.items():
            times[k].append(min(timed(r.invoke, inputs[k][i])[0] for _ in range(3)))
    return {k: float(np.mean(v)) for k, v in times.items()}


def measure(graphs: dict[str, bytes], x: np.ndarray, y: np.ndarray, rhos: list[float] | None, mflops: dict[str, float],
            backend: str, repeats: int, threads: int, signal=None) -> dict:
    """Interleaved latency of the int8 baseline and early-exit runtimes on `backend` (the early exits at `rhos`;
    None: never; on the exit `signal`, None: max softmax), with the exit rate, accuracy and FLOPs of the same run."""
    segs = segments_of(graphs)
    ee = MultiExitRuntime(segs, [float("inf")] * (len(segs) - 1) if rhos is None else list(rhos), threads, backend,
                          signal)
    runtimes = {"baseline": SingleRuntime(graphs["baseline_int8"], threads, backend), "early_exit": ee}
    for i in range(min(10, len(x))):  # warm-up
        for rt in runtimes.values():
            rt(x[i])
    rng = np.random.default_rng(0)
    lat = {k: np.full((repeats, len(x)), np.nan) for k in runtimes}
    preds: dict[str, list] = {k: [None] * len(x) for k in runtimes}
    with tqdm(total=repeats * len(x), desc=f"{backend} latency", unit="sample", mininterval=2) as bar:
        for r in range(repeats):
            for i in rng.permutation(len(x)):
                for k in rng.permutation(list(runtimes)):  # who goes first alternates at random
                    lat[k][r, i], preds[k][i] = timed(runtimes[k], x[i])
                bar.update()
    left = [p.exit for p in preds["early_exit"]]
    exited = np.array([e != ee.exits[-1] for e in left])
    mflops_ee = float(np.mean([mflops[e] for e in left]))
    flops_cut = 1 - mflops_ee / mflops["baseline"]
    # per sample, the fastest of the repeats: what the sample costs when nothing else interferes
    mean = {k: float(v.min(axis=0).mean()) for k, v in lat.items()}
    latency_cut = 1 - mean["early_exit"] / mean["baseline"]
    stages = stage_latency(graphs, x[:100], backend, threads)
    names = segment_names(len(segs) - 1)
    ran = [np.mean([ee.exits.index(e) >= i for e in left]) for i in range(len(segs))]  # how often each segment ran
    return {
        "latency_us": mean, "latency_statistic": f"mean over samples of the fastest of {repeats} runs",
        "mean_of_all_runs_us": {k: float(v.mean()) for k, v in lat.items()},
        "stage_latency_us": stages,
        "modelled_latency_us": float(sum(r * stages[n] for r, n in zip(ran, names, strict=True))),
        "exit_rate": float(exited.mean()),
        "exit_rates": {e: float(np.mean([v == e for v in left])) for e in ee.exits},
        "accuracy": {k: float(np.mean([p.label == t for p, t in zip(v, y, strict=True)])) for k, v in preds.items()},
        "mflops": {"early_exit": mflops_ee, "baseline": mflops["baseline"]},
        "flops_cut_pct": 100 * flops_cut, "latency_cut_pct": 100 * latency_cut,
        "latency_ratio": mean["early_exit"] / mean["baseline"], "flops_ratio": mflops_ee / mflops["baseline"],
        "latency_cut_over_flops_cut": latency_cut / flops_cut if flops_cut > 0 else None,
        "target_latency_cut_ge_0.8x_flops_cut": bool(flops_cut > 0 and latency_cut >= 0.8 * flops_cut),
    }
