"""What running a study on Ray costs on this machine (a benchmark, not a test):

    python -m common study_benchmark --task keyword_spotting     # -> results/studies/ray_benchmark.json

Two single-thread trainings (the task's `baseline` and `trecx`, short) run side by side twice: launched by
hand as two processes, then as a two-trial Ray Tune study started from the same command. It records the
wall time of each way (and the throughput ratio, hand / Ray: 1.0 means Ray costs nothing), the trainings'
own mean epoch time under each (the steady-state cost), Ray's start-up time and the memory its processes
hold while idle. Run it on an otherwise idle machine: anything else running moves every number.
"""

from __future__ import annotations

import csv
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import files, paths, tasks
from ..config import parse, versions
from ..errors import TrecxError
from ..studies import tune
from . import study

log = logging.getLogger("trecx.study_benchmark")
VARIANTS = ("baseline", "trecx")


@dataclass
class BenchmarkConfig:
    """Options of `python -m common study_benchmark`."""

    task: str = "keyword_spotting"  # whose trainings are timed
    train_config: str = "smoke"  # their training preset (--config of <task>.train)
    epochs: int = 4  # epochs of each training
    steps_per_epoch: int = 40  # batches per epoch (0: the whole training split)
    out: str = ""  # "" = results/studies/ray_benchmark.json


def _mean_epoch(run: Path) -> float:
    """Mean wall time of a run's epochs after the first (which also traces the graphs)."""
    with open(run / "log.csv") as f:
        secs = [float(r["epoch_seconds"]) for r in csv.DictReader(f)][1:]
    return sum(secs) / len(secs) if secs else float("nan")


def _ray_memory_mb() -> float:
    """Resident memory of the Ray processes this one started (GCS, raylet, idle workers...), MiB."""
    import psutil

    return sum(p.memory_info().rss for p in psutil.Process().children(recursive=True)) / 2**20


def run(cfg: BenchmarkConfig) -> dict:
    tasks.get(cfg.task)
    fields = {"epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = os.environ | {"TRECX_RUNS": str(root / "hand")} | (
            {"PYTHONPATH": str(paths.CHECKOUT)} if paths.CHECKOUT else {})
        start = time.perf_counter()
        front = tasks.module_name(cfg.task, "train")
        procs = [subprocess.Popen([sys.executable, "-m", front, "--config", cfg.train_config, "--variant", v,
                                   "--threads", "1", "--epochs", str(cfg.epochs),
                                   "--steps-per-epoch", str(cfg.steps_per_epoch)],
                                  cwd=paths.home(), env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(root / f"{v}.err", "w"))
                 for v in VARIANTS]
        codes = [p.wait() for p in procs]
        hand_s = time.perf_counter() - start
        for v, code in zip(VARIANTS, codes, strict=True):
            if code:
                last = ((root / f"{v}.err").read_text().strip().splitlines() or ["?"])[-1]
                raise TrecxError(f"the {v} training launched by hand failed: {last}")
        hand_epoch = {v: _mean_epoch(root / "hand" / cfg.task / cfg.train_config / v) for v in VARIANTS}

        os.environ["TRECX_RUNS"] = str(root / "ray")
        where = tune.Where(storage=str(root / "ray" / "studies"), threads=1)
        start = time.perf_counter()
        tune.start(where)
        startup_s = time.perf_counter() - start
        time.sleep(5)  # let the start-up settle before reading its memory
        idle_mb = _ray_memory_mb()
        trials = [study.trial(cfg.task, v, cfg.train_config, **fields) for v in VARIANTS]
        begin = time.perf_counter()
        tune.run("benchmark", trials, study.train_trial, where, extra={"threads": 1})
        ray_s = time.perf_counter() - begin + startup_s
        ray_epoch = {v: _mean_epoch(root / "ray" / cfg.task / cfg.train_config / v) for v in VARIANTS}
        import ray

        ray.shutdown()
    out = {"what": "two single-thread trainings side by side: by hand (two processes) and as a two-trial Ray Tune "
                   "study from one command",
           "config": asdict(cfg), "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "hand_wall_s": hand_s, "ray_wall_s": ray_s, "ray_startup_s": startup_s,
           "throughput_ratio_ray_vs_hand": hand_s / ray_s,
           "mean_epoch_s": {"hand": hand_epoch, "ray": ray_epoch},
           "epoch_time_ratio_ray_vs_hand": sum(ray_epoch.values()) / sum(hand_epoch.values()),
           "ray_idle_memory_mib": idle_mb, "versions": versions()}
    path = Path(cfg.out or paths.results_dir() / "studies" / "ray_benchmark.json")
    files.write_json(path, out)
    log.info("by hand %.1f s, on Ray %.1f s (start-up %.1f s): throughput ratio %.2f; epochs %.2fx as long under "
             "Ray; Ray idle memory %.0f MiB -> %s", hand_s, ray_s, startup_s, out["throughput_ratio_ray_vs_hand"],
             out["epoch_time_ratio_ray_vs_hand"], idle_mb, path)
    return out


def main(argv: list[str] | None = None) -> dict:
    return run(parse(BenchmarkConfig, None, argv, description=__doc__))
