"""Configs as code: presets, command-line overrides, clear errors; figures from results files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common import plots
from common.config import parse
from common.evaluate import curve_rows, write_csv
from common.sweep import sweep
from common.training import get_strategy
from image_classification.config import PRESETS, Config


def test_presets_and_overrides():
    cfg = parse(Config, PRESETS, ["--config", "smoke", "--epochs", "5", "--flip", "false", "--lr", "0.01"])
    assert (cfg.epochs, cfg.flip, cfg.lr, cfg.steps_per_epoch) == (5, False, 0.01, 3)
    assert parse(Config, PRESETS, []) == PRESETS["default"]


def test_bad_options_fail_with_a_message(capsys):
    with pytest.raises(SystemExit):
        parse(Config, PRESETS, ["--flip", "maybe"])
    assert "expected true/false" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(Config, PRESETS, ["--config", "nope"])
    with pytest.raises(ValueError, match="--strategy"):
        get_strategy("cloud")


def test_figures_follow_the_data(tmp_path: Path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    probs = [rng.dirichlet(np.ones(3), 50), np.eye(3)[y]]
    write_csv(tmp_path / "c.csv", curve_rows(sweep(probs, y, [1.0, 2.0]), ["early_exit", "final"]))
    plots.benefit_curves({"a": tmp_path / "c.csv"}, tmp_path / "f.png", baseline=(2.0, 1.0), logx=True)
    plots.confidence_violin({"a": probs[0].max(1), "empty": np.zeros(5)}, tmp_path / "v.png")
    assert (tmp_path / "f.png").stat().st_size > 1000 and (tmp_path / "v.png").stat().st_size > 1000
