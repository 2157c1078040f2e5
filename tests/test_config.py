"""Configs as code: presets, command-line overrides, clear errors; figures from results files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.config import parse
from common.errors import ConfigError
from common.evaluation import plots
from common.evaluation.evaluate import curve_rows
from common.evaluation.sweep import sweep
from common.files import read_csv, write_csv
from common.train.training import get_strategy
from image_classification.config import PRESETS, Config


def test_presets_and_overrides():
    cfg = parse(Config, PRESETS, ["--config", "smoke", "--epochs", "5", "--flip", "false", "--lr", "0.01"])
    assert (cfg.epochs, cfg.flip, cfg.lr, cfg.steps_per_epoch) == (5, False, 0.01, 3)
    assert parse(Config, PRESETS, []) == PRESETS["default"]


def test_bad_options_fail_with_a_message():
    with pytest.raises(ConfigError, match="--flip: expected true/false"):
        parse(Config, PRESETS, ["--flip", "maybe"])
    with pytest.raises(ConfigError, match="--config: invalid choice"):
        parse(Config, PRESETS, ["--config", "nope"])
    with pytest.raises(ValueError, match="--strategy"):
        get_strategy("cloud")


def test_help_shows_each_fields_comment_and_default(capsys):
    with pytest.raises(SystemExit):
        parse(Config, PRESETS, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--pad-crop PAD_CROP zero-pad by this many pixels" in text and "(default: 4)" in text
    assert "--epochs EPOCHS search runs still rising at epoch 15" in text and "(default: 100)" in text


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_figures_follow_the_data(tmp_path: Path, monkeypatch, scale: float):
    """The axes span the data, whatever its range (no hard-coded limits), and the files are PNGs."""
    drawn, save = [], plots._save

    def spy(fig, ax, out, *args, **kwargs):
        drawn.append(ax.axis())
        save(fig, ax, out, *args, **kwargs)

    monkeypatch.setattr(plots, "_save", spy)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    probs = [rng.dirichlet(np.ones(3), 50), np.eye(3)[y]]
    write_csv(tmp_path / "c.csv", curve_rows(sweep(probs, y, [scale, 2 * scale]), ["early_exit", "final"]))
    plots.benefit_curves({"a": tmp_path / "c.csv"}, tmp_path / "f.png", baseline=(2.5 * scale, 1.0), logx=True)
    plots.confidence_violin({"a": probs[0].max(1), "empty": np.zeros(5)}, tmp_path / "v.png")
    (x0, x1, y0, y1), _ = drawn
    assert x0 <= scale and x1 >= 2.5 * scale and x1 < 10 * scale  # the curve and the baseline star, snugly
    assert y0 <= 100 * min(r["accuracy"] for r in read_csv(tmp_path / "c.csv")) and y1 >= 100
    for f in ("f.png", "v.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aggregate_gives_mean_and_t_interval(tmp_path: Path):
    from common.files import read_csv
    from common.reporting.report import aggregate

    tables = {}
    for i, acc in enumerate([0.80, 0.84, 0.88]):
        write_csv(tmp_path / f"t{i}.csv", [{"model": "trecx", "final_test_accuracy": acc, "note": "x"}])
        tables[f"s{i}"] = tmp_path / f"t{i}.csv"
    rows = aggregate(tables, tmp_path / "summary.csv")
    (row,) = [r for r in rows if r["metric"] == "final_test_accuracy"]
    assert row["mean"] == pytest.approx(0.84) and row["n"] == 3
    assert row["ci95_high"] - row["mean"] == pytest.approx(4.303 * 0.04 / np.sqrt(3), rel=1e-3)  # t(0.975, 2)
    assert len(read_csv(tmp_path / "summary.csv")) == 1  # the text column is left out


def test_targets_read_the_results_and_report_gaps(tmp_path: Path):
    from common import tasks
    from common.reporting import targets

    write_csv(tmp_path / "table1.csv", [
        {"model": "baseline", "final_test_accuracy": 0.80},
        {"model": "trecx", "final_test_accuracy": 0.81, "test_flops_reduction_pct_1pt": 12.0,
         "val_flops_reduction_pct_1pt": 10.0},
        {"model": "trecx_plus", "final_test_accuracy": 0.79, "test_flops_reduction_pct_1pt": 31.0,
         "test_accuracy_1pt": 0.7885, "val_flops_reduction_pct_1pt": 29.0}])
    for name, acc in (("trecx", 0.8), ("sdn", 0.7)):
        (tmp_path / name).mkdir()
        write_csv(tmp_path / name / "benefit_curve_test.csv", [{"mflops": 1.0, "accuracy": acc},
                                                               {"mflops": 2.0, "accuracy": acc}])
    spec = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train_data=None, targets=(
        tasks.Target("final", "trecx.final_test_accuracy", "baseline.final_test_accuracy"),
        tasks.Target("cut", "max(trecx,trecx_plus).test_flops_reduction_pct_1pt", 30.0),
        tasks.Target("early", "trecx.early_exit_test_accuracy", 0.73),
        tasks.Target("curve", "curve_gain(trecx,sdn)", 0.01),
        tasks.Target("missing model", "curve_gain(trecx,branchynet)", 0.01)))
    rows = {r["target"]: r for r in targets.check(spec, tmp_path)}
    assert rows["final"]["met"] and rows["final"]["gap"] == pytest.approx(0.01)
    # 31% >= 30%, but at its rho the test accuracy fell 1.15 points: over the 1-point budget, so not met
    assert not rows["cut"]["met"] and rows["cut"]["within_budget"] is False and rows["cut"]["measured"] == 31.0
    assert rows["cut"]["from_model"] == "trecx_plus" and rows["cut"]["test_drop_points"] == pytest.approx(1.15)
    assert rows["cut"]["budget_points"] == 1 and rows["final"]["within_budget"] is None
    assert rows["final"]["test_drop_points"] is None  # not a trade-off
    assert rows["early"]["met"] is None and rows["missing model"]["met"] is None  # not measured, not passed
    assert rows["curve"]["measured"] == pytest.approx(10.0) and rows["curve"]["met"]
    # the model of max(a,b) is picked on validation: trecx, ahead there, is measured though its test cut is lower
    table = {r["model"]: r for r in read_csv(tmp_path / "table1.csv")}
    table["trecx"]["val_flops_reduction_pct_1pt"] = 35.0
    assert targets.read("max(trecx,trecx_plus).test_flops_reduction_pct_1pt", tmp_path, table) == 12.0
    bad = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train_data=None,
                     targets=(tasks.Target("x", "trecx.final_test_accuracy", 0.9),))
    assert targets.check(bad, tmp_path)[0]["met"] is False


def _fake_model(folder: Path, labels: np.ndarray, rights: list[float], costs: list[float], rng, base=None) -> dict:
    """outputs.npz and summary.json of a model whose exit k is right on about rights[k] of the images,
    confident when right; returns its table1 row (as test.py writes them)."""
    from common import files
    from common.evaluation import sweep
    from common.evaluation.summary import Summary
    from common.reporting import report

    names = ["early_exit", "final"][-len(rights):]
    probs = []
    for r in rights:
        right = rng.random(len(labels)) < r
        pred = np.where(right, labels, (labels + 1) % 10)
        p = np.full((len(labels), 10), 0.02)
        p[np.arange(len(labels)), pred] = np.where(right, rng.uniform(0.6, 1.0, len(labels)), rng.uniform(0.1, 0.7,
                                                                                                          len(labels)))
        probs.append(p / p.sum(1, keepdims=True))
    folder.mkdir(parents=True)
    files.savez(folder / "outputs.npz", **{f"test/{n}": p for n, p in zip(names, probs, strict=True)},
                **{f"val/{n}": p for n, p in zip(names, probs, strict=True)}, **{"test/labels": labels,
                                                                                 "val/labels": labels})
    s = {"exits": names, "params": 1,
         "exit_costs": {n: {"mflops": c, "params": 1, "mflops_alone": c, "params_alone": 1}
                        for n, c in zip(names, costs, strict=True)},
         "standalone": {n: {"test": float((p.argmax(1) == labels).mean()), "val": 0.0}
                        for n, p in zip(names, probs, strict=True)}}
    if len(names) > 1:
        curve = sweep.sweep(probs, labels, costs)
        write_csv(folder / "benefit_curve_test.csv", [{"mflops": m, "accuracy": a}
                                                     for m, a in zip(curve["mflops"], curve["accuracy"], strict=True)])
        s["baseline"] = base
        s["tradeoffs"] = sweep.tradeoffs(curve, curve, base["val_accuracy"], base["test_accuracy"], base["mflops"])
    files.write_json(folder / "summary.json", s)
    return report.table_row(folder.name, Summary.from_dict(s))


def test_each_target_gap_gets_an_interval_over_resampled_test_images(tmp_path: Path):
    from common import tasks
    from common.reporting import targets
    from common.reporting.resample import Resampler

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    base_row = _fake_model(tmp_path / "baseline", labels, [0.85], [10.0], rng)
    base = {"val_accuracy": base_row["final_test_accuracy"], "test_accuracy": base_row["final_test_accuracy"],
            "mflops": 10.0}
    rows = [base_row, _fake_model(tmp_path / "trecx", labels, [0.7, 0.86], [4.0, 10.5], rng, base),
            _fake_model(tmp_path / "sdn", labels, [0.6, 0.84], [4.0, 10.5], rng, base)]
    write_csv(tmp_path / "table1.csv", rows)
    table = {r["model"]: r for r in read_csv(tmp_path / "table1.csv")}
    every = np.arange(len(labels))  # all the images once: the very numbers of the tables
    resampler = Resampler(tmp_path)
    for ref in ("trecx.final_test_accuracy", "trecx.early_exit_test_accuracy", "curve_gain(trecx,sdn)",
                "max(trecx,sdn).test_flops_reduction_pct_1pt", "trecx.test_accuracy_2pt"):
        assert resampler.value(targets.parse_ref(ref), every) == pytest.approx(targets.read(ref, tmp_path, table)), ref
    spec = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train_data=None, targets=(
        tasks.Target("clear", "trecx.final_test_accuracy", 0.5),
        tasks.Target("close", "trecx.final_test_accuracy", "baseline.final_test_accuracy"),
        tasks.Target("curve", "curve_gain(trecx,sdn)", 0.01),
        tasks.Target("paired", "trecx.final_test_accuracy", "trecx.final_test_accuracy")))
    got = {r["target"]: r for r in targets.check(spec, tmp_path, rounds=200)}
    for r in (got["clear"], got["close"], got["curve"]):
        assert r["gap_ci95_low"] < r["gap"] < r["gap_ci95_high"], r
    assert got["clear"]["beyond_noise"] and not got["close"]["beyond_noise"]
    assert got["paired"]["gap_ci95_low"] == got["paired"]["gap_ci95_high"] == 0  # both sides see one draw
    assert targets.check(spec, tmp_path, rounds=0)[0]["beyond_noise"] is None
    (tmp_path / "sdn" / "outputs.npz").unlink()  # outputs not kept: no interval, the measure as before
    assert targets.check(spec, tmp_path, rounds=50)[2]["gap_ci95_low"] is None


def test_a_trade_off_within_its_budget_counts_and_a_guaranteed_one_reads_its_own_drop(tmp_path: Path):
    from common import tasks
    from common.reporting import targets

    write_csv(tmp_path / "table1.csv", [
        {"model": "baseline", "final_test_accuracy": 0.80},
        {"model": "trecx", "test_flops_reduction_pct_1pt": 31.0, "test_accuracy_1pt": 0.795,
         "guaranteed_test_flops_reduction_pct_1pt": 22.0, "guaranteed_test_drop_points_1pt": 1.3}])
    spec = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train_data=None, targets=(
        tasks.Target("cut", "trecx.test_flops_reduction_pct_1pt", 30.0),
        tasks.Target("certified", "trecx.guaranteed_test_flops_reduction_pct_1pt", 20.0)))
    rows = {r["target"]: r for r in targets.check(spec, tmp_path, rounds=0)}
    assert rows["cut"]["met"] and rows["cut"]["test_drop_points"] == pytest.approx(0.5)
    assert not rows["certified"]["met"] and rows["certified"]["test_drop_points"] == 1.3


def test_a_target_with_a_margin_needs_the_reference_plus_it_and_a_vector_cut_reads_its_own_drop(tmp_path: Path):
    from common import tasks
    from common.reporting import targets

    write_csv(tmp_path / "table1.csv", [
        {"model": "baseline", "final_test_accuracy": 0.80},
        {"model": "trecx_plus", "test_flops_reduction_pct_1pt": 36.0, "test_accuracy_1pt": 0.795},
        {"model": "trecx2", "vector_test_flops_reduction_pct_1pt": 41.0, "vector_test_drop_points_1pt": 0.4},
        {"model": "trecx3", "vector_test_flops_reduction_pct_1pt": 38.0, "vector_test_drop_points_1pt": 0.4}])
    spec = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train_data=None, targets=(
        tasks.Target("two", "trecx2.vector_test_flops_reduction_pct_1pt", "trecx_plus.test_flops_reduction_pct_1pt",
                     margin=3.0),
        tasks.Target("three", "trecx3.vector_test_flops_reduction_pct_1pt", "trecx_plus.test_flops_reduction_pct_1pt",
                     margin=3.0)))
    rows = {r["target"]: r for r in targets.check(spec, tmp_path, rounds=0)}
    assert rows["two"]["required"] == 39.0 and rows["two"]["met"] and rows["two"]["test_drop_points"] == 0.4
    assert rows["three"]["gap"] == pytest.approx(-1.0) and not rows["three"]["met"]
