"""Measured latency of the int8 early-exit model against the int8 baseline: python -m common.benchmark --task TASK

A benchmark, not a test. It reads what `python -m common.deploy` wrote to results/<task>/deploy/<variant>/ and
runs the test split at batch 1 on ai-edge-litert, one interpreter thread. The two runtimes are
interleaved sample by sample in a random order, so a noisy machine slows both alike and their
ratio stays stable. The early-exit runtime uses the rho chosen on the int8 validation outputs.
Writes results/<task>/deploy/<variant>/benchmark.json.
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
from tqdm import tqdm

from common import files, tasks
from common.config import parse, save_run_info
from common.deploy import DeployConfig, out_dir, read_graphs
from common.edge.runtime import EarlyExitRuntime, SingleRuntime, runner
from common.errors import ModelFileError

log = logging.getLogger("trecx.benchmark")


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


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(DeployConfig, {"default": DeployConfig()}, argv, description=__doc__)
    task = tasks.get(cfg.task)
    out = out_dir(cfg)
    deploy = json.loads((out / "deploy.json").read_text()) if (out / "deploy.json").exists() else None
    if deploy is None or deploy["variant"] != cfg.variant:
        raise ModelFileError(f"{out / 'deploy.json'} missing or for another variant: run "
                             f"python -m common.deploy --task {cfg.task} --variant {cfg.variant} first")
    graphs = read_graphs(out, cfg.variant, kinds=("int8",))  # what the benchmark runs
    data = task.load(cfg.data_dir, cfg.split_seed).splits  # the split's file list is in results/<task>/split.json
    x, y = data["test"]
    if cfg.samples and cfg.samples < len(x):  # a seeded random subset (a split may be ordered by class)
        pick = np.sort(np.random.default_rng(cfg.split_seed).permutation(len(x))[:cfg.samples])
        x, y = x[pick], y[pick]
    load = os.getloadavg()[0]  # other processes slow both runtimes alike: absolute times, not the ratio
    rec = {"task": cfg.task, "variant": cfg.variant, "baseline": deploy["baseline"], "rho": deploy["rho"],
           "drop_points": deploy["drop_points"], "test_samples": len(x), "test_split_size": len(data["test"][1]),
           "subset": "all" if len(x) == len(data["test"][1]) else f"{len(x)} random samples, seed {cfg.split_seed}",
           "repeats": cfg.repeats, "num_threads": cfg.num_threads, "graphs": "int8, batch 1",
           "backends": {"tflm": "tflite-micro Python interpreter: TFLM's portable kernels, as on a microcontroller",
                        "litert": "ai-edge-litert with XNNPACK on this x86 CPU"},
           "flash_bytes": deploy["flash_bytes_int8"], "arena_bytes": deploy["arena_bytes"]}
    for backend in ("tflm", "litert"):
        rec[backend] = measure(graphs, x, y, deploy["rho"], deploy["mflops"], backend, cfg.repeats, cfg.num_threads)
        r = rec[backend]
        log.info(f"{cfg.task} on {backend}: baseline {r['latency_us']['baseline']:.0f} µs, early exit "
                 f"{r['latency_us']['early_exit']:.0f} µs (exit rate {r['exit_rate']:.2f}); latency cut "
                 f"{r['latency_cut_pct']:.1f}% vs FLOPs cut {r['flops_cut_pct']:.1f}%")
    rec["machine"] = {"cpus": os.cpu_count(), "load_1min_before": round(load, 2),
                      "load_1min_after": round(os.getloadavg()[0], 2),
                      "note": "a load near the CPU count means other processes ran: compare the latency cuts, "
                              "not the absolute latencies"}
    files.write_json(out / "benchmark.json", rec)
    save_run_info(out / "benchmark_run", cfg)
    return rec


if __name__ == "__main__":
    from common import cli

    cli.run(main)
