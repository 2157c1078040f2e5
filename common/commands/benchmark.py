"""Measured latency of the int8 early-exit model against the int8 baseline: python -m common benchmark --task TASK

A benchmark, not a test. It reads what `python -m common deploy` wrote to results/<task>/deploy/<variant>/ and
runs the test split at batch 1 on ai-edge-litert, one interpreter thread. The two runtimes are
interleaved sample by sample in a random order, so a noisy machine slows both alike and their
ratio stays stable. The early-exit runtime runs at the thresholds deploy.json deploys (`threshold`: its rule).
Writes results/<task>/deploy/<variant>/benchmark.json.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .. import files, records, tasks
from ..config import parse, save_run_info
from ..edge.deployment import read_graphs
from ..edge.latency import measure
from ..evaluation import signals
from .deploy import DeployConfig, out_dir

log = logging.getLogger("trecx.benchmark")


def run(cfg: DeployConfig) -> dict:
    """Time both backends and write benchmark.json; returns its record."""
    task = tasks.get(cfg.task)
    out = out_dir(cfg)
    deploy = records.read(out, cfg.variant)  # refused in one line when missing, older or not these graphs
    graphs = read_graphs(out, cfg.variant, deploy["segments"], kinds=("int8",))  # what the benchmark runs
    data = task.load(cfg.data_dir, cfg.split_seed).splits  # the split's file list is in results/<task>/split.json
    x, y = data["test"]
    if cfg.samples and cfg.samples < len(x):  # a seeded random subset (a split may be ordered by class)
        pick = np.sort(np.random.default_rng(cfg.split_seed).permutation(len(x))[:cfg.samples])
        x, y = x[pick], y[pick]
    load = os.getloadavg()[0]  # other processes slow both runtimes alike: absolute times, not the ratio
    rec = {**deploy.stamp(), "task": cfg.task, "variant": cfg.variant, "baseline": deploy["baseline"],
           "rhos": deploy["rhos"], "signal": deploy.get("signal", signals.Signal().describe()),
           "threshold": deploy["threshold"], "drop_points": deploy["drop_points"], "test_samples": len(x),
           "test_split_size": len(data["test"][1]),
           "subset": "all" if len(x) == len(data["test"][1]) else f"{len(x)} random samples, seed {cfg.split_seed}",
           "repeats": cfg.repeats, "num_threads": cfg.num_threads, "graphs": "int8, batch 1",
           "backends": {"tflm": "tflite-micro Python interpreter: TFLM's portable kernels, as on a microcontroller",
                        "litert": "ai-edge-litert with XNNPACK on this x86 CPU"},
           "flash_bytes": deploy["flash_bytes_int8"], "arena_bytes": deploy["arena_bytes"]}
    for backend in ("tflm", "litert"):
        rec[backend] = measure(graphs, x, y, deploy["rhos"], deploy["mflops"], backend, cfg.repeats, cfg.num_threads,
                               signals.Signal.from_dict(deploy.get("signal")))
        r = rec[backend]
        if backend == "litert":  # timed only: the deployment's accuracy is TFLM's (deploy.json, the tflm entry)
            r.pop("accuracy", None)
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


def main(argv: list[str] | None = None) -> dict:
    return run(parse(DeployConfig, None, argv, description=__doc__, required=("task",)))
