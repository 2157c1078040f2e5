"""The documented cluster path, for real: a head and a second node started with `ray start` on loopback
(token authentication on, as `ray start --head` has it from Ray 2.59), the smoke study run through `--address`,
the second node killed mid-study; the study still finishes, with no epoch trained twice."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from common import paths

pytest.importorskip("ray")
RAY = str(Path(sys.executable).parent / "ray")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _epochs(log: Path) -> list[int]:
    if not log.exists():
        return []
    with open(log) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def _node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A Ray node in its own process group (`--block`: killing the group kills the node)."""
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args], env=env,
                            start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_study_on_a_two_node_cluster_survives_losing_a_node(tmp_path: Path):
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    port = _port()
    # a home of its own, with the token `ray get-auth-token --generate` writes there (~/.ray/auth_token), as on a
    # head where token authentication is on; every node of a token cluster runs in token mode
    home = tmp_path / "home"
    home.mkdir()
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=node_env, check=True, capture_output=True)
    assert (home / ".ray" / "auth_token").exists()
    node_env |= {"RAY_AUTH_MODE": "token"}
    head = _node(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", temp,
                  "--include-dashboard", "false"], node_env, tmp_path / "head.log")
    nodes = [head]
    try:
        time.sleep(8)
        worker = _node(["--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        "--dashboard-agent-listen-port", str(_port()), "--metrics-export-port", str(_port())],
                       node_env, tmp_path / "worker.log")
        nodes.append(worker)
        # the driver as a user on the head runs it: no RAY_AUTH_MODE, no TRECX_DATA (the default data root, made
        # absolute); the token is where `ray start` users keep it
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TRECX_DATA"))}
        env |= {"HOME": str(home), "TRECX_RUNS": str(tmp_path / "runs"), "TRECX_CACHE": str(tmp_path / "cache"),
                "PYTHONPATH": str(paths.CHECKOUT)}
        cmd = [sys.executable, "-m", "common", "study", "--study", "smoke", "--task", "keyword_spotting",
               "--epochs", "6", "--address", f"127.0.0.1:{port}"]
        driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / "driver.log", "w"))
        logs = [tmp_path / "runs" / "keyword_spotting" / "smoke" / v / "log.csv" for v in ("baseline", "trecx")]
        deadline = time.time() + 500
        while time.time() < deadline and driver.poll() is None:
            if all(0 < len(_epochs(log)) < 6 for log in logs):  # both trials part-way: one on each node
                break
            time.sleep(0.5)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        os.killpg(worker.pid, signal.SIGKILL)  # the second node dies with its trial
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
    for log in logs:
        assert _epochs(log) == list(range(6)), log  # finished, and no epoch trained twice
        assert (log.parent / "done.json").exists()


def test_a_node_without_the_data_is_named_before_any_trial_starts(tmp_path: Path, monkeypatch):
    """Checked on every node of the cluster; here the one node a local Ray has."""
    import ray

    from common.errors import ConfigError
    from common.studies import tune

    monkeypatch.setenv("TRECX_DATA", str(tmp_path / "nowhere"))
    tune.start(tune.Where())
    try:
        with pytest.raises(ConfigError, match=r"node .* of the cluster has no .*nowhere/speech_commands"):
            tune.check_nodes([paths.data_dir() / "speech_commands"])
        tune.check_nodes([paths.CHECKOUT])  # what every node has passes
    finally:
        ray.shutdown()
