"""--strategy: mirrored on two logical CPU devices; multiworker with two processes on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains or converts real models

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("strategy_worker.py")


def _env(**extra: str) -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"} | extra
    env.pop("TF_CONFIG", None) if "TF_CONFIG" not in extra else None
    return env


def test_mirrored_on_two_logical_cpus(tmp_path: Path):
    r = subprocess.run([sys.executable, str(WORKER), "mirrored", str(tmp_path / "run")], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "REPLICAS 2" in r.stdout
    assert (tmp_path / "run" / "best.keras").exists() and (tmp_path / "run" / "log.csv").exists()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_with_two_processes_on_localhost(tmp_path: Path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, str(WORKER), "multiworker", str(tmp_path / "run")],
                                      env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300))
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "REPLICAS 2" in out
    assert (tmp_path / "run" / "best.keras").exists()  # written by the chief (worker 0)
    assert (tmp_path / "run" / "worker1").is_dir()  # the other worker kept to its own folder
