"""Test every model of a folder on a task's validation and test splits (what every `<task>.test` runs):

    python -m keyword_spotting.test

Writes results/<task>/: each model's outputs, benefit curves, trade-offs and summary.json, table1.csv, the
figures, comparison.md (beside the paper and the prior methods) and split.json (the data it read).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from .. import files, paths, tasks
from ..config import parse
from ..errors import ModelFileError
from ..models.contract import load_model
from ..reporting import report

log = logging.getLogger("trecx.test")


@dataclass
class TestConfig:
    """Options of every task's test.py."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words (fixed by the task's test.py)
    models_dir: str = ""  # folder of <variant>.keras files; "" = pretrained/<task>
    out_dir: str = ""  # results folder; "" = results/<task>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    refresh: bool = False  # recompute cached outputs.npz


def load_models(models_dir: Path, input_shape: tuple[int, ...] | None = None) -> dict[str, keras.Model]:
    """Every `<variant>.keras` of a folder, keyed by variant name; a model whose input is not the task's
    `input_shape` is refused, naming the file and both shapes."""
    if not models_dir.is_dir():
        raise ModelFileError(f"--models-dir: {models_dir} is not a folder")
    models = {p.stem: load_model(p) for p in sorted(models_dir.glob("*.keras"))}
    for name, model in models.items():
        got = tuple(model.inputs[0].shape[1:]) if model.inputs else None
        if input_shape is not None and got != tuple(input_shape):
            raise ModelFileError(f"{models_dir / (name + '.keras')} takes inputs of shape {got}, but this task's "
                                 f"data has shape {tuple(input_shape)}: is it another task's model?")
    return models


def run(cfg: TestConfig) -> list[dict]:
    """Load the models of a folder (plus the MLPerf reference when the task has one, as
    `mlperf_reference`) and the val/test data once, evaluate, write results and split.json; then the
    task's own additions (`Task.extra`). Returns Table 1's rows."""
    task = tasks.get(cfg.task)
    models_dir = Path(cfg.models_dir or paths.pretrained_dir(task.name))
    out = Path(cfg.out_dir or paths.results_dir() / task.name)
    models = ({"mlperf_reference": task.reference()} if task.reference else {}) | load_models(models_dir,
                                                                                              task.input_shape)
    if task.baseline not in models:
        raise ModelFileError(f"no {task.baseline}.keras in {models_dir}: train one with "
                             f"python -m {task.name}.train --variant {task.baseline} --publish true")
    data = task.load(cfg.data_dir, cfg.split_seed)
    files.write_json(out / "split.json", data.info | {"files": data.files})
    rows = report.test_models(models, data.splits, out, task.baseline, task.curves, violin=task.violin, config=cfg,
                              info=data.info, task=task.name, models_dir=models_dir)
    if task.extra is not None:
        task.extra(models, out, data, models_dir)
    return rows


def main(task: str, argv: list[str] | None = None, description: str = "") -> list[dict]:
    """A task's test.py: its options, the task fixed."""
    return run(parse(TestConfig, None, argv, description=description, fixed={"task": tasks.check(task)}))
