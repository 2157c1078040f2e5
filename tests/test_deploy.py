"""Deployment: the tflite-micro runtime and arena search, the int8 exit threshold, and the
deploy -> benchmark -> model card pipeline on the shipped keyword-spotting model."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import needs_shared, summary_dict

from common import paths
from common.edge import export, tflm
from common.edge.runtime import MultiExitRuntime
from common.errors import ModelFileError

KWS_TRECX = paths.pretrained_dir("keyword_spotting") / "trecx.keras"


@pytest.fixture(scope="module")
def int8_split() -> tuple[bytes, bytes, np.ndarray]:
    """int8 head and tail of the shipped KWS T-RecX model (or an untrained one), and 20 inputs."""
    from common.models import registry

    model = (keras.models.load_model(KWS_TRECX, compile=False) if KWS_TRECX.exists()
             else registry.get("keyword_spotting", "trecx").builder())
    head, tail = export.split_at_exits(model)
    x = 3 * np.random.default_rng(0).standard_normal((40, 49, 10, 1)).astype("float32")
    feats = head.predict(x[:20], verbose=0)["features"]
    return export.to_tflite(head, x[:20]), export.to_tflite(tail, feats), x[20:]


def test_arena_size_is_the_smallest_that_runs(int8_split):
    head, _, x = int8_split
    q = export.TFLiteRunner(head).quantize(x[0])
    arena = tflm.arena_size(head, q)
    assert tflm._runs(head, arena, q)
    assert not tflm._runs(head, arena - 16, q)


def test_tflm_runtime_agrees_with_litert(int8_split):
    head, tail, x = int8_split
    lite, tflm = MultiExitRuntime([head, tail], [0.5]), MultiExitRuntime([head, tail], [0.5], backend="tflm")
    a, b = [np.array([rt.all_exits(r) for r in x]) for rt in (lite, tflm)]  # (N, 2 exits, classes)
    # XNNPACK and TFLM's kernels round differently, and the tail runs on each runtime's own head
    # output, so single outputs can drift by ~15 int8 steps (1/256) on these off-distribution inputs;
    # on average they must agree to within a step or two.
    d = np.abs(a - b)
    assert d.mean() < 2 / 256 and d.max() < 0.1, (d.mean(), d.max())
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9


def test_int8_threshold_matches_the_dequantized_confidence(int8_split):
    head, tail, x = int8_split
    for rho in (0.0, 0.3, 0.55, 0.8, 1.01):
        rt = MultiExitRuntime([head, tail], [rho])
        for r in x:
            early, _ = rt.all_exits(r)
            assert (rt(r).exit == "early_exit") == (float(early.max()) >= rho - 1e-6)


@needs_shared("datasets", "speech_commands")
@needs_shared("reference_models", "mlperf_tiny", "keyword_spotting", "kws_ref_model")
@pytest.mark.skipif(not KWS_TRECX.exists(), reason="no shipped KWS T-RecX model")
@pytest.mark.slow
def test_deploy_benchmark_and_model_card(tmp_path: Path, monkeypatch):
    from common.commands import benchmark, deploy
    from common.reporting import card

    res = tmp_path / "results"  # the model card reads this deploy run's files beside the test.py results
    out = res / "deploy" / "trecx"
    for f in ("trecx/summary.json", "split.json"):
        (res / f).parent.mkdir(parents=True, exist_ok=True)
        (res / f).write_bytes((paths.results_dir() / "keyword_spotting" / f).read_bytes())
    rec = deploy.main(["--task", "keyword_spotting", "--out-dir", str(out), "--check-samples", "20"])
    assert max(rec["float_split_max_abs_diff"].values()) < 1e-4
    # 261 test clips: one clip is 0.38 points; the deployed final exit and baseline stay within 1 point of float,
    # the early exit (whose int8 confidences only pick the exit) within 2
    gap = rec["int8_minus_float_points_test"]
    assert abs(gap["final"]) <= 1.0 and abs(gap["baseline"]) <= 1.0 and abs(gap["early_exit"]) <= 2.0, gap
    assert set(rec["arena_bytes"]) == {"head_int8", "tail_int8", "baseline_int8"}
    assert (out / "trecx_head.int8.tflite").exists() and rec["segments"] == ["head", "tail"]
    # certified on the TFLM outputs of the calibration split (260 clips: a zero loss certifies 2.3 points, so the
    # automatic budget is 3), which no training or choice read; the validation rule reads validation
    t, v = rec["threshold"], rec["thresholds_by_rule"]["validation"]
    assert t["rule"] == "certified" and rec["drop_points"] == 3 == t["budget_points"]
    assert rec["data"]["counts"]["calibration"] == 260 == rec["budget"]["calibration_samples"]
    assert t["chosen_on"] == "int8 outputs on TFLM of the calibration split (260 samples)"
    assert v["chosen_on"] == "int8 outputs on TFLM of the validation split (450 samples)"
    assert v["guarantee"].startswith("none") and not v["certified"]
    assert rec["lineage"]["untouched"] and not rec["lineage"]["problems"]
    assert t["guarantee"].startswith("none: nothing certified") == (rec["rhos"] is None)
    smallest = next((int(d) for d, c in rec["certified_by_budget"].items() if c["rhos"]), None)
    assert rec["smallest_budget_certified"] == smallest
    lo, hi = t["test"]["drop_points_ci95"]
    assert lo <= t["test"]["drop_points"] <= hi and hi - lo > 0.1  # 261 test clips: an interval, not a point
    from common import records

    dep = records.read(out, "trecx")  # the hashes name the shipped model and the graphs written
    assert dep.hashes["model"] == records.file_sha256(KWS_TRECX)
    assert dep.hashes["graphs"]["trecx_head.int8.tflite"] == records.file_sha256(out / "trecx_head.int8.tflite")
    assert set(rec["thresholds_by_rule"]) == {"certified", "validation"}
    assert {"1", "2", "3"} <= set(rec["certified_by_budget"]) <= {"1", "2", "3", "5", "10"}
    for f in out.glob("*.float.tflite"):  # git keeps only the int8 graphs: a clone must still benchmark
        f.unlink()
    bench = benchmark.main(["--task", "keyword_spotting", "--out-dir", str(out), "--samples", "40",
                            "--repeats", "1"])
    written = json.loads((out / "benchmark.json").read_text())
    assert written["test_samples"] == 40 and written["machine"]["cpus"] >= 1
    assert written["deployment"] == dep.digest and "accuracy" not in written["litert"]  # TFLM's numbers only
    # both interpreters run the same int8 graphs: they exit on the same samples but for rounding
    assert abs(bench["tflm"]["exit_rate"] - bench["litert"]["exit_rate"]) <= 2 / 40
    assert all(bench[be]["latency_us"]["baseline"] > 0 for be in ("tflm", "litert"))
    text = card.card("keyword_spotting", results=res)
    assert "Deployed threshold(s)" in text and "rule `certified`, 3-point budget against the int8 baseline" in text
    assert f"{bench['tflm']['latency_us']['baseline']:.0f}" in text  # this run's latency, not the committed one
    # A deploy that fails its checks replaces nothing: the graphs and deploy.json stay as they were.
    from common.errors import TrecxError

    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def no_rho(*args, **kwargs):
        raise TrecxError("no rho")

    monkeypatch.setattr(deploy, "choose", no_rho)
    with pytest.raises(TrecxError):
        deploy.main(["--task", "keyword_spotting", "--out-dir", str(out), "--check-samples", "20", "--split-seed", "1"])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # A graph that is not the one deploy.json hashed is refused by every reader, in one line.
    from common.errors import ModelFileError

    (out / "trecx_tail.int8.tflite").write_bytes((out / "trecx_head.int8.tflite").read_bytes())
    with pytest.raises(ModelFileError, match=r"trecx_tail\.int8\.tflite is not the graph deploy\.json describes"):
        benchmark.main(["--task", "keyword_spotting", "--out-dir", str(out), "--samples", "4", "--repeats", "1"])


def test_model_card_names_a_test_drop_beyond_the_allowed_one_extra_ram_and_no_certificate(tmp_path: Path):
    from conftest import fake_deployment

    from common.evaluation.summary import Summary
    from common.reporting import card as model_card
    from common.reporting.board import firmware_runs

    summary = Summary.from_dict(summary_dict([{"drop_points": 1, "test_drop_points": 1.44}]))
    dep = fake_deployment(tmp_path, rhos=None, threshold={"rhos": None, "budget_points": 2})
    fw = tmp_path / "firmware_cortex-m4_cmsis_nn.json"
    fw.write_text(json.dumps(dep.stamp() | {"ram_bytes": 69472, "baseline_ram_bytes": 55952}))
    text = "\n".join(model_card._limits({}, 5000, summary, dep, None, firmware_runs(tmp_path)))
    assert "landed 1.44 points below" in text and "24% more than the baseline firmware's 55,952" in text
    assert "Nothing could be certified for a 2-point budget" in text
    summary = Summary.from_dict(summary_dict([{"drop_points": 1, "test_drop_points": 0.8}]))
    dep = fake_deployment(tmp_path, rhos=[0.9], threshold={"rhos": [0.9], "budget_points": 2})
    fw.write_text(json.dumps(dep.stamp() | {"ram_bytes": 50000, "baseline_ram_bytes": 55952}))
    text = "\n".join(model_card._limits({}, 5000, summary, dep, None, firmware_runs(tmp_path)))
    assert "landed" not in text and "more than the baseline" not in text and "Nothing could" not in text
    fw.write_text(json.dumps({"deployment": "another", "ram_bytes": 1}))  # a record of another deployment
    with pytest.raises(ModelFileError, match="was measured on another deployment"):
        firmware_runs(tmp_path)


def test_model_card_shows_the_spread_across_seeds(tmp_path: Path):
    from common.files import write_csv
    from common.reporting import card as model_card

    write_csv(tmp_path / "table1.csv", [{"model": "baseline", "final_test_accuracy": 0.85}])
    assert "Across runs" not in model_card.overview("image_classification", ["trecx"], results=tmp_path)
    write_csv(tmp_path / "seeds" / "summary.csv", [
        {"model": "trecx", "metric": "final_test_accuracy", "n": 2, "mean": 0.8438, "ci95_low": 0.8184,
         "ci95_high": 0.8692, "values": "0.8418 0.8458"},
        {"model": "trecx", "metric": "params", "n": 2, "mean": 1.0, "ci95_low": 1.0, "ci95_high": 1.0, "values": "1 1"},
        {"model": "sdn", "metric": "final_test_accuracy", "n": 2, "mean": 0.8, "ci95_low": 0.8, "ci95_high": 0.8,
         "values": "0.8 0.8"}])
    text = model_card.overview("image_classification", ["trecx"], results=tmp_path)
    assert "| `trecx` | final exit (%) | 84.18% / 84.58% | 84.38% [81.84%, 86.92%] |" in text
    assert "100.00%" not in text and "`sdn`" not in text  # only the card's models and headline numbers


def test_model_card_says_when_the_seed_runs_were_tested_on_another_test_split(tmp_path: Path):
    from common.reporting.compare import seed_split_note

    (tmp_path / "seed1").mkdir()
    (tmp_path / "seed1" / "split.json").write_text(json.dumps({"counts": {"test": 5000}}))
    (tmp_path / "split.json").write_text(json.dumps({"counts": {"test": 2500}}))
    said = seed_split_note(tmp_path, tmp_path / "split.json")
    assert "tested on 5000 test samples" in said and "other test numbers here are on 2500" in said
    (tmp_path / "split.json").write_text(json.dumps({"counts": {"test": 5000}}))
    assert seed_split_note(tmp_path, tmp_path / "split.json") == ""
