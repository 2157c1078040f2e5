"""Nothing lost or half-written: atomic writes, rebuilt caches, runs that resume after a kill and never
mix presets, records free of machine paths, the tensorflow-datasets path, and the programs' exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common import files, paths

ENV = os.environ | {"PYTHONUNBUFFERED": "1"}


def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), files.atomic(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["table.csv"]
    files.write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["table.csv"]


def test_a_corrupt_cache_is_rebuilt_and_named(tmp_path: Path, caplog):
    from common.data.sources import cached_arrays

    cache = tmp_path / "c.npz"
    cache.write_bytes(b"PK\x03\x04 broken")
    out = cached_arrays(cache, lambda: {"x": np.arange(3)})
    assert out["x"].tolist() == [0, 1, 2] and str(cache) in caplog.text
    assert cached_arrays(cache, lambda: {"x": np.zeros(1)})["x"].tolist() == [0, 1, 2]  # now read back


def test_corrupt_outputs_are_recomputed(tmp_path: Path):
    from common.evaluation.evaluate import cached_outputs
    from image_classification.model import resnet8

    model, x = resnet8(), np.zeros((2, 32, 32, 3), np.float32)
    (tmp_path / "outputs.npz").write_bytes(b"\x00" * 10)
    out = cached_outputs(model, {"test": (x, np.arange(2))}, tmp_path / "outputs.npz")
    assert out["test"]["final"].shape == (2, 10)
    assert files.load_npz(tmp_path / "outputs.npz") is not None


def test_best_model_is_replaced_only_whole(tmp_path: Path):
    """The checkpoint is written to a partial file and renamed over best.keras after the epoch."""
    from common.train.callbacks import Promote

    best, partial = tmp_path / "best.keras", tmp_path / ".best.partial.keras"
    best.write_text("previous best")
    promote = Promote(partial, best)
    promote.on_epoch_end(0)  # no better epoch: nothing written, nothing moved
    assert best.read_text() == "previous best"
    partial.write_text("new best")
    promote.on_epoch_end(1)
    assert best.read_text() == "new best" and not partial.exists()


def test_presets_and_seeds_never_share_a_run_folder(monkeypatch, tmp_path: Path):
    from common.config import parse
    from common.train.runs import run_dir
    from keyword_spotting.config import PRESETS, Config

    monkeypatch.setenv("TRECX_RUNS", str(tmp_path))
    smoke = parse(Config, PRESETS, ["--config", "smoke", "--variant", "baseline"])
    full = parse(Config, PRESETS, ["--variant", "baseline", "--publish", "true"])
    assert run_dir(smoke, "keyword_spotting") != run_dir(full, "keyword_spotting")
    assert run_dir(full, "keyword_spotting") == tmp_path / "keyword_spotting" / "default" / "baseline"
    seed1 = parse(Config, PRESETS, ["--variant", "baseline", "--seed", "1"])
    assert run_dir(seed1, "keyword_spotting") == tmp_path / "keyword_spotting" / "default" / "baseline_seed1"


def test_records_name_no_machine_paths():
    from common.config import record
    from keyword_spotting.config import PRESETS

    rec = record(PRESETS["default"])
    assert rec["init_from"] == "reference:keyword_spotting/kws_ref_model"
    assert paths.resolve(rec["init_from"]) == paths.reference_dir() / "keyword_spotting" / "kws_ref_model"
    assert paths.portable(paths.data_dir() / "cifar10" / "a.tar.gz", paths.data_dir()) == "cifar10/a.tar.gz"
    run = paths.runs_dir() / "keyword_spotting" / "seeds" / "seed0" / "trecx"  # e.g. the seeds command' --out-dir
    assert paths.portable(run) == "runs:keyword_spotting/seeds/seed0/trecx"
    assert paths.resolve(paths.portable(run)) == run
    tracked = subprocess.run(["git", "grep", "-l", "-E", '"/(work|tmp|home|root|Users)/', "--", "results",
                              "pretrained"], cwd=paths.CHECKOUT, capture_output=True, text=True).stdout.split()
    assert tracked == []


def test_publish_records_portable_paths(tmp_path: Path, monkeypatch):
    """A run folder written by older code holds machine paths; what publish ships never does."""
    import json

    from common.train import runs

    monkeypatch.setenv("TRECX_HOME", str(tmp_path))
    for var in ("TRECX_RUNS", "TRECX_PRETRAINED"):
        monkeypatch.delenv(var, raising=False)
    run = paths.runs_dir() / "keyword_spotting" / "seeds" / "seed1" / "trecx"
    src = tmp_path / "run"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"out_dir": str(run), "variant": "trecx", "lr": 0.1}))
    (src / "best.keras").write_bytes(b"model")
    runs.publish(src, "keyword_spotting", "trecx", sub="seeds/seed1")
    dest = tmp_path / "pretrained" / "keyword_spotting" / "seeds" / "seed1"
    assert json.loads((dest / "trecx.config.json").read_text()) == {
        "out_dir": "runs:keyword_spotting/seeds/seed1/trecx", "variant": "trecx", "lr": 0.1}
    assert (dest / "trecx.keras").read_bytes() == b"model"


def test_installed_the_places_are_the_working_folder_and_the_variables_never_the_package(tmp_path, monkeypatch):
    from common.edge import toolchain

    monkeypatch.setattr(paths, "CHECKOUT", None)  # as in site-packages
    for var in [v for v in os.environ if v.startswith("TRECX_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.results_dir() == tmp_path / "results" and paths.pretrained_dir("t") == tmp_path / "pretrained" / "t"
    assert paths.runs_dir() == tmp_path / "runs" and paths.data_dir() == tmp_path / "datasets"
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "trecx" and paths.third_party_dir() is None
    with pytest.raises(toolchain.FirmwareError, match="TRECX_THIRD_PARTY"):
        toolchain.tflm_source()
    monkeypatch.setenv("TRECX_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("TRECX_RESULTS", str(tmp_path / "r"))
    assert paths.results_dir() == tmp_path / "r" and paths.runs_dir() == tmp_path / "h" / "runs"


def test_download_path_with_tfds_mock(tmp_path: Path):
    """No local copy: CIFAR-10 comes from tensorflow-datasets (its own mock here), kept under the
    cache folder, with no temporary folder left anywhere."""
    import tensorflow_datasets as tfds

    from common.data.images import load_cifar10

    (tmp_path / "empty").mkdir()
    before = {p for p in Path("/tmp").glob("tmp*") if p.is_dir()}
    with tfds.testing.mock_data(num_examples=30):
        s = load_cifar10(tmp_path / "empty", tmp_path / "cache", download=True)
    assert s.x["test"].shape == (30, 32, 32, 3) and len(s.y["train"]) + len(s.y["val"]) == 30
    assert s.info["source"] == "tensorflow-datasets:cifar10"
    assert {p for p in Path("/tmp").glob("tmp*") if p.is_dir()} <= before
    assert not list((tmp_path / "cache").glob("tfds-tmp-*"))


def _train_cmd(data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "image_classification.train", "--config", "smoke", "--variant", "baseline",
            "--data-dir", str(data), "--steps-per-epoch", "2", *extra]


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(cifar_root: Path, tmp_path: Path):
    """kill -9 after the second epoch; the same command then trains only the epochs left, keeps the
    log whole and the best model of the whole run."""
    env = ENV | {"TRECX_RUNS": str(tmp_path / "runs"), "TRECX_CACHE": str(tmp_path / "cache")}
    run = tmp_path / "runs" / "image_classification" / "smoke" / "baseline"
    cmd = _train_cmd(cifar_root, "--epochs", "30")
    proc = subprocess.Popen(cmd, cwd=paths.CHECKOUT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    log = run / "log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(log.read_text().splitlines()) - 1
    assert 2 <= done_before < 30 and not (run / "done.json").exists()
    subprocess.run(cmd, cwd=paths.CHECKOUT, env=env, check=True, capture_output=True)
    epochs = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert epochs[-1] == 29 and sorted(set(epochs)) == list(range(30))  # nothing skipped
    assert len(epochs) - 30 <= 1  # at most the epoch cut off by the kill ran twice
    assert json.loads((run / "done.json").read_text())["epochs"] == 30 and (run / "best.keras").exists()


def test_a_program_error_is_one_line_and_exit_2(tmp_path: Path):
    cmd = [sys.executable, "-m", "image_classification.train", "--epochs", "0"]
    r = subprocess.run(cmd, cwd=paths.CHECKOUT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "error: --epochs must be at least 1, got 0"
    assert "Traceback" not in r.stderr
    r = subprocess.run([*cmd, "--debug"], cwd=paths.CHECKOUT, env=ENV, capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr




def test_recipe_search_table_comes_from_the_runs_logs(tmp_path: Path):
    from image_classification import recipe_search

    run = tmp_path / "runs" / "image_classification" / "search_sgd" / "baseline"
    run.mkdir(parents=True)
    (run / "log.csv").write_text("epoch,accuracy,val_accuracy,epoch_seconds\n0,0.5,0.4,60\n1,0.7,0.65,60\n")
    (run / "config.json").write_text(json.dumps({"optimizer": "sgd", "threads": 1, "data": {
        "source": str(paths.data_dir() / "cifar10" / "x.tar.gz")}}))
    (tmp_path / "runs" / "image_classification" / "search_adam" / "baseline").mkdir(parents=True)  # unfinished
    (run / "done.json").write_text("{}")
    rows = recipe_search.main(["--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "out")])
    assert [(r["recipe"], r["val_accuracy"], r["cpu_minutes"], r["epochs"]) for r in rows] == [
        ("search_sgd", 0.65, 2.0, 2)]
    copied = json.loads((tmp_path / "out" / "recipe_search" / "search_sgd" / "config.json").read_text())
    assert copied["data"]["source"] == "cifar10/x.tar.gz" and (tmp_path / "out" / "recipe_search.png").exists()


def test_promote_ships_the_best_on_validation_unless_it_is_trecx(tmp_path: Path):
    import json

    from conftest import summary_dict

    from common.commands import promote as command
    from common.studies import promote

    def tested(v: str, val_mflops: float | None, sure: float = 0.0) -> None:
        """A tested variant: its validation cut from val_mflops, its outputs confident and right on `sure` of 400
        validation samples (the early exit costs 2 of the baseline's 10 MFLOPs)."""
        (tmp_path / f"{v}.keras").write_bytes(v.encode())
        (tmp_path / f"{v}.config.json").write_text(json.dumps({"variant": v}))
        (tmp_path / v).mkdir()
        summary = summary_dict([{"val_mflops": val_mflops}])
        summary["exit_costs"] = {e: summary["exit_costs"][e] | {"mflops": c} for e, c in (("early_exit", 2.0),
                                                                                           ("final", 10.0))}
        (tmp_path / v / "summary.json").write_text(json.dumps(summary))
        y = np.arange(400) % 4
        right = np.eye(4)[y] * 0.9 + 0.025
        early = np.where(np.arange(400)[:, None] < sure * 400, right, 0.25)
        np.savez(tmp_path / v / "outputs.npz", **{"val/early_exit": early, "val/final": right, "val/labels": y})
        base = tmp_path / "mlperf_reference"  # KWS's baseline, right on every sample
        base.mkdir(exist_ok=True)
        np.savez(base / "outputs.npz", **{"val/final": right, "val/labels": y})

    tested("trecx", 7.0, sure=0.4)  # the incumbent below: far behind, beyond noise
    tested("trecx_sd", None)  # no rho within 1 point on validation: never chosen
    cuts = {"trecx": pytest.approx(30.0), "trecx_sd": None}
    assert promote.choose(tmp_path, ["trecx", "trecx_sd"]) == ("trecx", cuts)
    assert not promote.ship(tmp_path, "trecx", "trecx_plus") and not (tmp_path / "trecx_plus.keras").exists()
    tested("trecx_ee1_none", 4.0, sure=0.9)
    assert command.main(["--task", "keyword_spotting", "--candidates", "trecx_sd", "trecx_ee1_none",
                         "--models-dir", str(tmp_path), "--results-dir", str(tmp_path)]) == "trecx_ee1_none"
    assert (tmp_path / "trecx_plus.keras").read_bytes() == b"trecx_ee1_none"
    cfg = json.loads((tmp_path / "trecx_plus.config.json").read_text())
    assert cfg["variant"] == "trecx_ee1_none" and cfg["shipped_as"] == "trecx_plus"
    decision = json.loads((tmp_path / "promote" / "trecx_plus.json").read_text())
    assert decision["beyond_noise"] and decision["margin_ci95_points"][0] > 0
    # a challenger ahead of the shipped trecx_plus by less than its noise: the incumbent stays, and says why
    tested("trecx_close", 3.9, sure=0.905)
    assert command.main(["--task", "keyword_spotting", "--candidates", "trecx_ee1_none", "trecx_close",
                         "--models-dir", str(tmp_path), "--results-dir", str(tmp_path)]) == "trecx_ee1_none"
    assert (tmp_path / "trecx_plus.keras").read_bytes() == b"trecx_ee1_none"
    decision = json.loads((tmp_path / "promote" / "trecx_plus.json").read_text())
    assert decision["winner_on_validation"] == "trecx_close" and not decision["beyond_noise"]
    assert "within its noise" in decision["why"]


def test_training_cost_counts_a_stopped_epoch_at_the_median(tmp_path: Path):
    from common.reporting import compute as cost

    seconds = [30, 100, 100, 5571, 100]  # a slow first epoch is real cost; 5,571 s is a SIGSTOP pause
    (tmp_path / "trecx.log.csv").write_text("epoch,epoch_seconds\n" + "".join(
        f"{i},{s}\n" for i, s in enumerate(seconds)) + "4,100\n")  # a resumed run logged epoch 4 twice
    (tmp_path / "trecx.config.json").write_text(json.dumps({"threads": 1, "preset": "default"}))
    (tmp_path / "old.log.csv").write_text("epoch,loss\n0,1.0\n")  # no timings, no config
    rows = {r["model"]: r for r in cost.training_cost(tmp_path)}
    assert rows["trecx"]["epochs"] == 5 and rows["trecx"]["paused_epochs"] == 1
    assert rows["trecx"]["cpu_hours"] == round(430 / 3600, 2)
    assert rows["old"]["cpu_hours"] is None and rows["old"]["threads"] == 2
    (tmp_path / "trecx_plus.log.csv").write_text((tmp_path / "trecx.log.csv").read_text())  # the promote command's copy
    (tmp_path / "trecx_plus.config.json").write_text(json.dumps({"threads": 1, "shipped_from": "trecx"}))
    rows = cost.training_cost(tmp_path)
    assert cost.total_cpu_hours(rows) == round(430 / 3600, 2)
