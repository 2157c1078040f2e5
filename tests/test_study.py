"""Studies on Ray Tune (`python -m common study`): a smoke study killed mid-run carries on when started
again, keeping the finished trial and resuming the other from its last finished epoch."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import paths
from common.commands import study
from common.errors import ConfigError

pytest.importorskip("ray")


def _epochs(log: Path) -> list[int]:
    with open(log) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_study_killed_mid_run_carries_on_without_retraining_the_finished_trial(tmp_path: Path, monkeypatch):
    env = os.environ | {"TRECX_RUNS": str(tmp_path / "runs"), "TRECX_CACHE": str(tmp_path / "cache"),
                        "PYTHONPATH": str(paths.CHECKOUT)}
    cmd = [sys.executable, "-m", "common", "study", "--study", "smoke", "--task", "keyword_spotting",
           "--max-concurrent", "1", "--epochs", "8"]
    first, second = (tmp_path / "runs" / "keyword_spotting" / "smoke" / v for v in ("baseline", "trecx"))
    driver = subprocess.Popen(cmd, cwd=paths.CHECKOUT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "first.log", "w"))
    deadline, done_at = time.time() + 400, None
    try:
        while time.time() < deadline and driver.poll() is None:
            if done_at is None and (first / "done.json").exists():
                done_at = time.time()
            log = second / "log.csv"
            # killed once the first trial is finished (and its state saved) and the second is part-way
            if done_at and time.time() - done_at > 4 and log.exists() and len(_epochs(log)) >= 1:
                break
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "first.log").read_text()[-2000:]  # ended before the kill
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    assert not (second / "done.json").exists()
    before = (first / "log.csv").read_bytes(), (first / "log.csv").stat().st_mtime_ns
    part = _epochs(second / "log.csv")
    r = subprocess.run(cmd, cwd=paths.CHECKOUT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "carrying on" in r.stderr and "started baseline/smoke" not in r.stderr  # finished: not run again
    assert ((first / "log.csv").read_bytes(), (first / "log.csv").stat().st_mtime_ns) == before
    assert (second / "done.json").exists()
    assert _epochs(second / "log.csv") == list(range(8)) and len(part) < 8  # resumed, no epoch trained twice
    state = json.loads((tmp_path / "runs" / "studies" / "keyword_spotting_smoke" / "trials.json").read_text())
    assert [t["variant"] for t in state] == ["baseline", "trecx"]
    # to move it to another machine: the Ray state and both run folders, relative to the runs folder
    import tarfile

    monkeypatch.setenv("TRECX_RUNS", str(tmp_path / "runs"))
    study.run(study.StudyConfig(study="smoke", task="keyword_spotting", epochs=8, pack=str(tmp_path / "s.tar.gz")))
    with tarfile.open(tmp_path / "s.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"studies/keyword_spotting_smoke", "keyword_spotting/smoke/baseline", "keyword_spotting/smoke/trecx",
            "keyword_spotting/smoke/trecx/done.json"} <= names


def test_a_study_started_again_with_other_trials_is_refused(tmp_path: Path, monkeypatch):
    from common.studies import tune

    monkeypatch.setenv("TRECX_RUNS", str(tmp_path / "runs"))
    folder = tmp_path / "runs" / "studies" / "keyword_spotting_smoke"
    folder.mkdir(parents=True)
    (folder / tune.TRIALS_FILE).write_text(json.dumps([study.trial("keyword_spotting", "sdn")]))
    with pytest.raises(ConfigError, match="started with other trials: pass --restart true"):
        study.run(study.StudyConfig(study="smoke", task="keyword_spotting"))


def test_unknown_study_is_a_one_line_error():
    with pytest.raises(ConfigError, match="unknown study 'nope'; known: exit_study"):
        study.run(study.StudyConfig(study="nope", task="keyword_spotting"))


def test_every_study_lists_its_trials_without_training():
    """Each study's grid resolves from the task's own definitions (presets, exit cells, waves)."""
    for name, task in (("exit_study", "keyword_spotting"), ("seeds", "visual_wake_words"),
                       ("distill_search", "keyword_spotting"), ("recipe_search", "image_classification"),
                       ("wave", "image_classification"), ("wave", "keyword_spotting"), ("smoke", "keyword_spotting")):
        trials = study.STUDIES[name](study.StudyConfig(study=name, task=task))
        assert trials and all(set(t) == {"task", "preset", "variant", "fields", "publish_as"} for t in trials)
        assert len({json.dumps(t, sort_keys=True) for t in trials}) == len(trials)  # no trial twice
