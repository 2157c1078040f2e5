"""Configs as code: presets, command-line overrides, clear errors; figures from results files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.config import parse
from common.errors import ConfigError
from common.evaluation import plots
from common.evaluation.evaluate import curve_rows, read_csv, write_csv
from common.evaluation.sweep import sweep
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
    from common.evaluation.evaluate import read_csv
    from common.evaluation.report import aggregate

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
    from common import targets, tasks

    write_csv(tmp_path / "table1.csv", [
        {"model": "baseline", "final_test_accuracy": 0.80},
        {"model": "trecx", "final_test_accuracy": 0.81, "test_flops_reduction_pct_1pt": 12.0},
        {"model": "trecx_plus", "final_test_accuracy": 0.79, "test_flops_reduction_pct_1pt": 31.0}])
    for name, acc in (("trecx", 0.8), ("sdn", 0.7)):
        (tmp_path / name).mkdir()
        write_csv(tmp_path / name / "benefit_curve_test.csv", [{"mflops": 1.0, "accuracy": acc},
                                                               {"mflops": 2.0, "accuracy": acc}])
    spec = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train=None, targets=(
        tasks.Target("final", "trecx.final_test_accuracy", "baseline.final_test_accuracy"),
        tasks.Target("cut", "max(trecx,trecx_plus).test_flops_reduction_pct_1pt", 30.0),
        tasks.Target("early", "trecx.early_exit_test_accuracy", 0.73),
        tasks.Target("curve", "curve_gain(trecx,sdn)", 0.01),
        tasks.Target("missing model", "curve_gain(trecx,branchynet)", 0.01)))
    rows = {r["target"]: r for r in targets.check(spec, tmp_path)}
    assert rows["final"]["met"] and rows["final"]["gap"] == pytest.approx(0.01)
    assert rows["cut"]["met"] and rows["cut"]["measured"] == 31.0
    assert rows["early"]["met"] is None and rows["missing model"]["met"] is None  # not measured, not passed
    assert rows["curve"]["measured"] == pytest.approx(10.0) and rows["curve"]["met"]
    bad = tasks.Task("image_classification", (1,), ("a",), "baseline", load=None, train=None,
                     targets=(tasks.Target("x", "trecx.final_test_accuracy", 0.9),))
    assert targets.check(bad, tmp_path)[0]["met"] is False
