"""Long runs across machines: unfinished runs carried in one file, caches built once by concurrent runs,
published models not trained again."""

from __future__ import annotations

import json
import os
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from common.train import carry


def _run_folder(root: Path, name: str, finished: bool = False, age: float = 60.0) -> Path:
    run = root / "default" / name
    (run / "backup").mkdir(parents=True)
    for rel, text in (("config.json", "{}"), ("log.csv", "epoch\n0\n"), ("backup/latest.weights.h5", name),
                      ("backup/latest.weights.h5.bkp", "old"), (".best.partial.keras", "half")):
        (run / rel).write_text(text)
    if finished:
        (run / "done.json").write_text("{}")
    old = time.time() - age
    for p in run.rglob("*"):
        os.utime(p, (old, old))
    return run


def test_unfinished_runs_travel_to_a_new_machine_and_leave_once_finished(tmp_path: Path):
    here, there, archive = tmp_path / "here", tmp_path / "there", tmp_path / "repo" / "carry.tar.gz"
    running = _run_folder(here, "trecx")
    _run_folder(here, "baseline", finished=True)
    assert carry.save(archive, here) == 1
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["default/trecx/backup/latest.weights.h5", "default/trecx/config.json",
                                          "default/trecx/log.csv"]  # no second copies, no half-written files
    assert carry.restore(archive, there) == ["default/trecx"]
    assert (there / "default" / "trecx" / "backup" / "latest.weights.h5").read_text() == "trecx"
    (there / "default" / "trecx" / "log.csv").write_text("newer")
    assert carry.restore(archive, there) == []  # a run folder the machine has is never replaced
    assert (there / "default" / "trecx" / "log.csv").read_text() == "newer"
    (running / "done.json").write_text("{}")
    assert carry.save(archive, here) == 0 and not archive.exists()


def test_a_run_being_written_is_saved_later_not_half(tmp_path: Path):
    _run_folder(tmp_path / "runs", "trecx", age=0.0)  # an epoch ending right now
    assert carry.save(tmp_path / "carry.tar.gz", tmp_path / "runs") is None
    assert not (tmp_path / "carry.tar.gz").exists()


def test_a_damaged_carry_file_is_named(tmp_path: Path):
    from common.errors import DataError

    (tmp_path / "carry.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match=r"carry\.tar\.gz"):
        carry.restore(tmp_path / "carry.tar.gz", tmp_path / "runs")


def test_runs_started_side_by_side_extract_one_archive_once(tmp_path: Path, caplog):
    from common.data.sources import cached_arrays, extract

    src = tmp_path / "src" / "data"
    for i in range(200):
        (src / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 10}" / f"{i}.txt").write_text(str(i))
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="data")
    caplog.set_level("INFO")
    with ThreadPoolExecutor(4) as pool:  # flock serialises separate opens, threads as well as processes
        folders = list(pool.map(lambda _: extract(archive, tmp_path / "cache", "data"), range(4)))
    assert len(set(folders)) == 1 and len(list(folders[0].rglob("*.txt"))) == 200
    assert caplog.text.count("extracting") == 1

    builds = []

    def build():
        builds.append(1)
        time.sleep(0.2)
        import numpy as np

        return {"x": np.arange(3)}

    with ThreadPoolExecutor(3) as pool:
        arrays = list(pool.map(lambda _: cached_arrays(tmp_path / "cache" / "a.npz", build), range(3)))
    assert len(builds) == 1 and all(a["x"].tolist() == [0, 1, 2] for a in arrays)


def test_a_model_published_from_the_same_recipe_is_not_trained_again(tmp_path: Path, monkeypatch):
    from common import paths
    from common.config import TrainConfig, record
    from common.train.runs import already_published as _already_published

    monkeypatch.setattr(paths, "pretrained_dir", lambda task: tmp_path / "pretrained" / task)
    cfg = TrainConfig(variant="trecx", publish=True, epochs=100, threads=2)
    (tmp_path / "pretrained" / "ic").mkdir(parents=True)
    (tmp_path / "pretrained" / "ic" / "trecx.config.json").write_text(json.dumps(record(
        TrainConfig(variant="trecx", publish=True, epochs=100, threads=1))))  # threads: not the recipe
    out = tmp_path / "runs" / "trecx"
    assert _already_published(cfg, "ic", out)
    assert not _already_published(TrainConfig(variant="trecx", publish=True, epochs=50), "ic", out)
    assert not _already_published(TrainConfig(variant="trecx", publish=True, epochs=100, restart=True), "ic", out)
    assert not _already_published(TrainConfig(variant="trecx", publish=False, epochs=100), "ic", out)
    out.mkdir(parents=True)  # this machine has the run: it resumes or republishes as before
    assert not _already_published(cfg, "ic", out)


def test_a_seed_run_publishes_into_a_sub_folder_and_counts_as_published(tmp_path: Path, monkeypatch):
    from common import paths
    from common.config import TrainConfig, record
    from common.train.runs import already_published as _already_published
    from common.train.runs import publish

    monkeypatch.setattr(paths, "pretrained_dir", lambda task: tmp_path / "pretrained" / task)
    run = tmp_path / "runs" / "trecx_seed1"
    run.mkdir(parents=True)
    cfg = TrainConfig(variant="trecx", seed=1, publish=True, publish_as="seeds/seed1/trecx")
    (run / "best.keras").write_text("model")
    (run / "config.json").write_text(json.dumps(record(cfg)))
    assert publish(run, "ic", cfg.publish_as) == tmp_path / "pretrained" / "ic" / "seeds" / "seed1" / "trecx.keras"
    assert (tmp_path / "pretrained" / "ic" / "seeds" / "seed1" / "trecx.config.json").exists()
    assert _already_published(cfg, "ic", tmp_path / "elsewhere" / "trecx_seed1")
