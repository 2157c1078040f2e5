"""Train a list of runs in order, in the background, surviving interruption.

    nohup python -m common runqueue --queue image_classification/queues/recipe_search.txt --jobs 2 &

The queue file holds one run a line, a module and its options (`image_classification.train --config
search_sgd --variant baseline`, or `common seeds --task ...`); `#` starts a comment. Each run goes to its
own run folder, where `train` resumes from the last finished epoch (its `backup/`) and skips a finished run, so the same
command started again after any interruption carries on where it stopped. `--jobs 2 --threads 1`
runs two single-threaded trainings side by side (faster on 2 cores than one run on two threads:
see docs/training.md). A run that fails is recorded and skipped next time unless `--retry-failed`.
Each run's output goes to <runs>/queue/<task>/<queue name>/<line>.log (see `queue_name`); the queue's
own progress to stderr. With `--carry FILE`, the unfinished runs also travel to the next machine: they
are restored from FILE at start and saved into it after every finished epoch (see `train.carry`);
commit FILE before the machine goes.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common import paths
from common.config import parse
from common.errors import ConfigError
from common.train import carry

log = logging.getLogger("trecx.runqueue")


def read_queue(path: Path) -> list[list[str]]:
    """The runs of a queue file: one argv (module first) per non-empty, non-comment line."""
    if not path.is_file():
        raise ConfigError(f"queue file {path} does not exist")
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        words = shlex.split(line, comments=True)
        if words:
            if ("." not in words[0] and words[0] != "common") or words[0].startswith("-"):
                raise ConfigError(f"{path}:{number}: a line must start with a module (task.train) or `common "
                                  f"<command>`, got {words[0]!r}")
            runs.append(words)
    return runs


def queue_name(path: Path) -> str:
    """Where a queue keeps its state and logs, under <runs>/queue/: `<task>/<stem>` for a file in a task's
    queues/ folder (two tasks' `distill_search.txt` never share one), else the file's stem."""
    path = path.resolve()
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "queues" else path.stem


def runs_root(path: Path) -> Path:
    """Where a queue's runs are: <runs>/<task> for a task's queue, else all of <runs>."""
    name = queue_name(path)
    return paths.runs_dir() / name.split("/")[0] if "/" in name else paths.runs_dir()


class Queue:
    """Runs a queue file's lines with a fixed number of workers, recording each line's outcome."""

    def __init__(self, path: Path, jobs: int, threads: int, retry_failed: bool):
        self.path, self.runs, self.jobs, self.threads = path, read_queue(path), jobs, threads
        self.folder = paths.runs_dir() / "queue" / queue_name(path)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file = self.folder / "state.json"
        self.state: dict[str, str] = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        if retry_failed:
            self.state = {k: v for k, v in self.state.items() if v != "failed"}
        self.lock, self.procs, self.stopping = threading.Lock(), set(), False

    def _record(self, key: str, outcome: str) -> None:
        with self.lock:
            self.state[key] = outcome
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=1))
            tmp.replace(self.state_file)

    def _run(self, index: int, argv: list[str]) -> str:
        key = shlex.join(argv)
        if self.stopping:
            return "skipped"
        cmd = [sys.executable, "-m", *argv] + (["--threads", str(self.threads)] if self.threads else [])
        logfile = self.folder / f"{index:02d}.log"
        log.info("start  [%d] %s (log: %s)", index, key, logfile)
        start = time.time()
        with open(logfile, "a") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=paths.REPO,
                                    env=os.environ | {"PYTHONUNBUFFERED": "1"})
            with self.lock:
                self.procs.add(proc)
            code = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        if self.stopping:  # interrupted: resumes next time
            return "interrupted"
        outcome = "done" if code == 0 else "failed"
        self._record(key, outcome)
        log.info("%s [%d] %s after %.1f min%s", outcome.ljust(6), index, key, (time.time() - start) / 60,
                 "" if code == 0 else f" (exit {code}; see {logfile})")
        return outcome

    def stop(self, *_) -> None:
        """Stop the running trainings (they resume from their backups when the queue is started again)."""
        self.stopping = True
        with self.lock:
            for proc in self.procs:
                proc.terminate()

    def run(self) -> dict[str, int]:
        todo = [(i, a) for i, a in enumerate(self.runs) if self.state.get(shlex.join(a)) not in ("done", "failed")]
        log.info("queue %s: %d runs, %d to do, %d at a time", queue_name(self.path), len(self.runs), len(todo),
                 self.jobs)
        with ThreadPoolExecutor(self.jobs) as pool:
            outcomes = list(pool.map(lambda item: self._run(*item), todo))
        return {o: outcomes.count(o) for o in set(outcomes)}


@dataclass
class QueueConfig:
    """Options of `python -m common runqueue`."""

    queue: str = ""  # the queue file: one run a line (a module and its options)
    jobs: int = 2  # runs side by side
    threads: int = 1  # TensorFlow threads per run (0 = all cores)
    retry_failed: bool = False  # run again the lines that failed before
    carry: str = ""  # a file that carries the unfinished runs to the next machine (restored, then kept saved)


def run(cfg: QueueConfig) -> dict[str, int]:
    """Train the queue's unfinished lines; returns how many ended how."""
    if not cfg.queue or cfg.jobs < 1 or cfg.threads < 0:
        raise ConfigError(f"--queue FILE is needed, --jobs at least 1 and --threads 0 or more "
                          f"(got {cfg.queue!r}, {cfg.jobs}, {cfg.threads})")
    queue = Queue(Path(cfg.queue), cfg.jobs, cfg.threads, cfg.retry_failed)
    saver = None
    if cfg.carry:  # before any training starts: a restored run resumes instead of starting over
        root = runs_root(queue.path)
        carry.restore(Path(cfg.carry), root)
        saver = carry.Saver(Path(cfg.carry), root)
        saver.start()
    signal.signal(signal.SIGTERM, queue.stop)
    signal.signal(signal.SIGINT, queue.stop)
    try:
        outcomes = queue.run()
    finally:
        if saver:
            saver.stop()
    log.info("finished: %s", outcomes)
    return outcomes


def main(argv: list[str] | None = None) -> dict[str, int]:
    return run(parse(QueueConfig, None, argv, description=__doc__))
