"""Measured batch-1 latency of the int8 early-exit runtime against the int8 baseline, interleaved sample by
sample in a random order so that a noisy machine slows both alike (the `benchmark` command)."""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from common.edge.runtime import EarlyExitRuntime, SingleRuntime, runner


def timed(fn, x: np.ndarray) -> tuple[float, object]:
    t = time.perf_counter_ns()
    result = fn(x)
    return (time.perf_counter_ns() - t) / 1e3, result


def stage_latency(graphs: dict[str, bytes], x: np.ndarray, backend: str, threads: int) -> dict[str, float]:
    """Mean over samples of the fastest of 3 invokes (µs) of each int8 graph alone, inputs quantized
    beforehand, round robin."""
    runners = {k: runner(graphs[f"{k}_int8"], backend, threads) for k in ("head", "tail", "baseline")}
    head, tail = runners["head"], runners["tail"]
    inputs = {"head": [head.quantize(r) for r in x], "baseline": [runners["baseline"].quantize(r) for r in x]}
    inputs["tail"] = [tail.quantize(head.dequantize("features", head.raw(r)["features"])) for r in inputs["head"]]
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(len(x)):
        for k, r in runners.items():
            times[k].append(min(timed(r.invoke, inputs[k][i])[0] for _ in range(3)))
    return {k: float(np.mean(v)) for k, v in times.items()}


def measure(graphs: dict[str, bytes], x: np.ndarray, y: np.ndarray, rho: float, mflops: dict[str, float],
            backend: str, repeats: int, threads: int) -> dict:
    """Interleaved latency of the int8 baseline and early-exit runtimes on `backend`, with the exit
    rate, accuracy and FLOPs of the same run."""
    runtimes = {"baseline": SingleRuntime(graphs["baseline_int8"], threads, backend),
                "early_exit": EarlyExitRuntime(graphs["head_int8"], graphs["tail_int8"], rho, threads, backend)}
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
    exited = np.array([p.exit == "early_exit" for p in preds["early_exit"]])
    mflops_ee = float(np.where(exited, mflops["early_exit"], mflops["final"]).mean())
    flops_cut = 1 - mflops_ee / mflops["baseline"]
    # per sample, the fastest of the repeats: what the sample costs when nothing else interferes
    mean = {k: float(v.min(axis=0).mean()) for k, v in lat.items()}
    latency_cut = 1 - mean["early_exit"] / mean["baseline"]
    stages = stage_latency(graphs, x[:100], backend, threads)
    return {
        "latency_us": mean, "latency_statistic": f"mean over samples of the fastest of {repeats} runs",
        "mean_of_all_runs_us": {k: float(v.mean()) for k, v in lat.items()},
        "stage_latency_us": stages,
        "modelled_latency_us": stages["head"] + (1 - exited.mean()) * stages["tail"],
        "exit_rate": float(exited.mean()),
        "accuracy": {k: float(np.mean([p.label == t for p, t in zip(v, y, strict=True)])) for k, v in preds.items()},
        "mflops": {"early_exit": mflops_ee, "baseline": mflops["baseline"]},
        "flops_cut_pct": 100 * flops_cut, "latency_cut_pct": 100 * latency_cut,
        "latency_ratio": mean["early_exit"] / mean["baseline"], "flops_ratio": mflops_ee / mflops["baseline"],
        "latency_cut_over_flops_cut": latency_cut / flops_cut if flops_cut > 0 else None,
        "target_latency_cut_ge_0.8x_flops_cut": bool(flops_cut > 0 and latency_cut >= 0.8 * flops_cut),
    }
