"""Records that name what they describe: every shipped deployment against pretrained/ (hashes, thresholds,
MFLOPs), the readers' one-line refusals, the calibration split and its lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fake_deployment

from common import paths, records, tasks
from common.data.splits import hold_out, lineage
from common.errors import ModelFileError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (REPO / "results").glob("*/deploy/*/deploy.json"))


@pytest.mark.parametrize("folder", SHIPPED, ids=[f"{p.parts[-3]}/{p.name}" for p in SHIPPED])
def test_every_shipped_deployment_describes_the_shipped_model(folder: Path):
    """Its hashes match pretrained/ and the graphs beside it, its thresholds are the deployed rule's, its MFLOPs
    the model's own; its benchmark and firmware records were measured on it."""
    from common.models import flops
    from common.models.contract import load_model
    from common.reporting.board import firmware_records, read_benchmark

    dep = records.read(folder)  # every graph file beside it is the one it hashed
    task, variant = dep["task"], dep["variant"]
    model = paths.pretrained_dir(task) / f"{variant}.keras"
    records.check_model(dep, model)
    base = paths.pretrained_dir(task) / f"{tasks.get(task).baseline}.keras"
    if base.exists():
        assert dep.hashes["baseline_model"] == records.file_sha256(base)
    assert all((folder / name).exists() for name in dep.hashes["graphs"] if ".int8." in name)
    assert dep["rhos"] == dep["threshold"]["rhos"] == dep["thresholds_by_rule"][dep["rule"]]["rhos"]
    costs = flops.exit_costs(load_model(model))
    assert dep["mflops"] == pytest.approx({n: costs[n]["mflops"] for n in dep["exits"]} | {
        "baseline": dep["mflops"]["baseline"]})
    assert dep["lineage"]["untouched"] and dep["threshold"]["certified"] == (
        dep["rule"] != "validation" and dep["rhos"] is not None)
    for rec in [read_benchmark(folder), *firmware_records(folder, "firmware_*.json")]:
        assert rec is None or rec["deployment"] == dep.digest
    from common.evaluation import signals

    sig = signals.Signal.from_dict(dep.get("signal"))  # an exit signal fitted on validation, one per early exit
    assert sig.name not in signals.FITTED or (len(sig.params) == len(dep["exits"]) - 1
                                              and sig.fitted_on.startswith("the validation split"))


def test_the_digest_names_the_exit_signal_that_the_thresholds_compare(tmp_path: Path):
    dep = fake_deployment(tmp_path)
    rec = dict(dep.record)
    gate = {"name": "gate", "params": [[1.0, -1.0, 1.0, 0.0]], "fitted_on": "the validation split, 9 samples"}
    digests = {records.Deployment(tmp_path, rec | {"signal": s}).digest for s in (
        None, {"name": "max_softmax", "params": [], "fitted_on": ""}, gate, gate | {"fitted_on": "reworded"},
        gate | {"params": [[2.0, -1.0, 1.0, 0.0]]})}
    assert len(digests) == 3  # max softmax as before; the gate by its parameters, not by its wording


def test_a_reader_refuses_a_changed_graph_another_model_and_a_record_of_another_deployment(tmp_path: Path):
    dep = fake_deployment(tmp_path)
    assert records.read(tmp_path).digest == dep.digest
    with pytest.raises(ModelFileError, match="deploys trecx, not trecx2"):
        records.read(tmp_path, "trecx2")
    (tmp_path / "other.keras").write_bytes(b"another model")
    with pytest.raises(ModelFileError, match="deploys another trecx than"):
        records.check_model(dep, tmp_path / "other.keras")
    (tmp_path / "benchmark.json").write_text(json.dumps(dep.stamp() | {"x": 1}))
    assert records.read_result(tmp_path / "benchmark.json", dep)["x"] == 1
    fake_deployment(tmp_path, rhos=(0.8,))  # deployed again at another threshold: the old record is of another
    with pytest.raises(ModelFileError, match="was measured on another deployment"):
        records.read_result(tmp_path / "benchmark.json", records.read(tmp_path))
    (tmp_path / "trecx_head.int8.tflite").write_bytes(b"changed")
    with pytest.raises(ModelFileError, match=r"is not the graph deploy\.json describes"):
        records.read(tmp_path)
    (tmp_path / records.DEPLOY).write_text(json.dumps({"task": "t", "variant": "trecx"}))
    with pytest.raises(ModelFileError, match="from an older deploy"):
        records.read(tmp_path)


def test_the_calibration_split_is_a_stratified_part_of_test_apart_from_it():
    y = np.repeat(np.arange(4), 50)
    x = np.arange(len(y), dtype="float32")[:, None]
    ev = tasks.EvalData({"val": (x[:8], y[:8]), "test": (x, y)}, {"counts": {"test": 200}},
                        {"test": [f"s{i}" for i in range(len(y))]}, lambda n: x[:n])
    got = hold_out(ev, seed=0)
    (xc, yc), (xt, yt) = got.splits["calibration"], got.splits["test"]
    assert len(yc) == len(yt) == 100 and np.bincount(yc).tolist() == [25] * 4  # stratified halves
    assert not set(xc[:, 0]) & set(xt[:, 0]) and set(xc[:, 0]) | set(xt[:, 0]) == set(x[:, 0])
    assert set(got.files["calibration"]).isdisjoint(got.files["test"])
    assert got.info["counts"] == {"test": 100, "calibration": 100} and "calibration_split" in got.info
    assert hold_out(ev, seed=0).files == got.files and hold_out(ev, seed=1).files != got.files  # seeded


def test_a_model_trained_on_another_split_leaves_nothing_certified(tmp_path: Path):
    info = {"checksum": "abc", "calibration_split": "half of test"}
    (tmp_path / "ours.config.json").write_text(json.dumps({"split_seed": 0, "data": {"checksum": "abc"}}))
    (tmp_path / "other.config.json").write_text(json.dumps({"split_seed": 3, "data": {"checksum": "abc"}}))
    ok = lineage({"ours": tmp_path / "ours.config.json", "ref": tmp_path / "ref.config.json"}, 0, info)
    assert ok["untouched"] and ok["notes"][0].startswith("ref: trained outside this project")
    bad = lineage({"other": tmp_path / "other.config.json"}, 0, info)
    assert not bad["untouched"] and "seed 3, not 0" in bad["problems"][0]
    assert not lineage({}, 0, {"checksum": "abc"})["untouched"]  # data with no calibration split certifies nothing


def test_the_committed_certificates_table_is_what_the_deployments_generate():
    import csv

    from common.reporting import certificates

    results = REPO / "results"
    got = certificates.rows(results)
    with open(results / certificates.CSV) as f:
        written = list(csv.DictReader(f))
    assert [r["deployment"] for r in got] == [r["deployment"] for r in written], "rerun python -m common certificates"
    for g, w in zip(got, written, strict=True):
        assert g["test_drop_points"] == pytest.approx(float(w["test_drop_points"])), g["folder"]
        assert str(g["within_budget"]) == w["within_budget"] and str(g["certified"]) == w["certified"], g["folder"]


FIELD = sorted((REPO / "results").glob("*/field/*/field.json"))


@pytest.mark.parametrize("path", FIELD, ids=[f"{p.parts[-4]}/{p.parts[-2]}" for p in FIELD])
def test_every_field_record_names_the_deployment_it_studied(path: Path):
    """A field record (its rows and its board run) names its deployment by digest: a deployment redone (other
    graphs, thresholds or model) leaves it naming another, and the field command leaves it out."""
    rec = json.loads(path.read_text())
    dep = records.read(path.parents[2] / "deploy" / path.parent.name)
    assert rec["deployment"] == dep.digest
    assert {r["digest"] for r in rec["shift"] + rec["streams"]} == {dep.digest}
    assert rec["board"] is None or rec["board"]["bit_exact"]


def test_a_field_record_of_another_deployment_is_left_out(tmp_path: Path):
    from common.reporting.field import gather

    dep = fake_deployment(tmp_path / "deploy" / "x")
    row = {"deployment": "x", "digest": dep.digest}
    for digest, kept in ((dep.digest, 1), ("another", 0)):
        (tmp_path / "field" / "x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "field" / "x" / "field.json").write_text(json.dumps(
            {"deployment": digest, "shift": [row], "streams": [row], "board": None}))
        assert len(gather(tmp_path / "field", tmp_path / "deploy")[0]) == kept
