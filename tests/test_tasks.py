"""A smoke train + test of each task for a few steps on the real data in ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED, needs_shared

from common import tasks
from common.commands.reproduce import smoke
from common.files import read_csv

pytestmark = pytest.mark.slow  # trains or converts real models

DATA = {"image_classification": "cifar10", "keyword_spotting": "speech_commands",
        "visual_wake_words": "visual_wake_words"}


@needs_shared("reference_models", "mlperf_tiny")
@pytest.mark.parametrize("task", tasks.NAMES)
def test_smoke_train_and_test(task: str, tmp_path: Path):
    if not (SHARED / "datasets" / DATA[task]).exists():
        pytest.skip(f"{SHARED / 'datasets' / DATA[task]} is absent")
    spec = tasks.get(task)
    out = smoke(spec, root=tmp_path, data_dir=str(SHARED / "datasets"))
    for v in spec.smoke_variants:
        run = tmp_path / task / v
        assert (run / "best.keras").exists() and (run / "log.csv").exists()
        assert json.loads((run / "config.json").read_text())["variant"] == v
        assert "keras" in json.loads((run / "versions.json").read_text())
    rows = {r["model"]: r for r in read_csv(out / "table1.csv")}
    assert "trecx" in rows and rows["trecx"]["mflops_early_exit"] < rows["trecx"]["mflops_full"]
    curve = read_csv(out / "trecx" / "benefit_curve_test.csv")
    assert len(curve) == 101 and curve[0]["exit_rate_early_exit"] == 1.0
    assert (out / "trecx" / "tradeoffs.csv").exists() and (out / "split.json").exists()
    assert any(out.glob("fig4*_benefit_curves.png"))
    assert json.loads((out / "config.json").read_text())["baseline"] in rows
