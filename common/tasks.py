"""The tasks, each described once by a `Task` spec registered in its own folder (`<task>/task.py`).

Every command (`<task>.train`, `<task>.test`, `python -m common <command>`) looks a task up here by name
and uses only its spec.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

NAMES = ("image_classification", "keyword_spotting", "visual_wake_words")  # the one list of tasks
DEPLOYED = "trecx"  # the variant deploy, benchmark, firmware and export_sources act on unless --variant says
ROOT = __name__.partition(".")[0]  # the library's name: "common" in the checkout, "trecx" once installed


def module_name(name: str, part: str) -> str:
    """The module `part` of task folder `name` ("task", "config", "searches.distill", ...): `<name>.<part>` in the
    checkout, `trecx.<name>.<part>` once installed (the task folders travel inside the package)."""
    return f"{'' if ROOT == 'common' else ROOT + '.'}{check(name)}.{part}"


def module(name: str, part: str) -> types.ModuleType:
    """The module `module_name(name, part)`, imported."""
    return importlib.import_module(module_name(name, part))


@dataclass
class EvalData:
    """What testing and deployment read of a task's data, loaded once."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # "val", "calibration", "test" -> (float32 inputs, labels)
    info: dict  # where the data came from: dataset, source relative to the data root, checksum, counts
    files: dict[str, list[str]]  # sample names per recorded subset (written to results/<task>/split.json)
    int8_samples: Callable[[int], np.ndarray]  # n random training inputs (no augmentation): int8 quantization


def image_eval_data(data, split_seed: int, recorded: tuple[str, ...] = ("train", "val", "test"),
                    train_x: Callable[[], np.ndarray] | None = None) -> EvalData:
    """EvalData of an image dataset's `common.data.images.Splits`: float32 pixels 0..255; int8 samples from
    random training images (`train_x()` reads them where `data` left them undecoded); the sample names of the
    `recorded` subsets."""

    def int8_samples(n: int) -> np.ndarray:
        x = data.x["train"] if "train" in data.x else train_x()
        return x[np.random.default_rng(split_seed).permutation(len(x))[:n]].astype("float32")

    return EvalData({s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}, data.info,
                    {k: v for k, v in data.names.items() if k in recorded}, int8_samples)


@dataclass
class FieldData:
    """A task's test samples as a device meets them, before its front end: what the field study shifts."""

    raw: np.ndarray  # the test split's samples in raw form (image pixels, int16 waveforms)
    labels: np.ndarray
    front_end: Callable[[np.ndarray], np.ndarray]  # raw samples -> model inputs (identity for images)
    shifts: tuple[str, ...]  # the kinds of `data.shifts` the task meets in the field
    background: list | None = None  # recordings an audio shift mixes in


def image_field_data(load: Callable[[str, int], EvalData], shifts: tuple[str, ...]) -> Callable[[str, int], FieldData]:
    """The field hook of an image task: its test images are their own raw form."""

    def field(data_dir: str, split_seed: int) -> FieldData:
        x, y = load(data_dir, split_seed).splits["test"]
        return FieldData(x, y, lambda raw: raw.astype("float32"), shifts)

    return field


@dataclass(frozen=True)
class Study:
    """An exit study (the paper's Fig 2, extended to exit widths): one model per (width, position) cell."""

    widths: tuple[str, ...]  # heat-map rows
    positions: tuple[int, ...]  # heat-map columns: the layer or block the exit follows
    name: Callable[[int, str], str]  # (position, width) -> registered variant
    position_label: str = "after block"  # the heat map's x axis reads "early exit <label> n"


@dataclass(frozen=True)
class Target:
    """One target: `measure` must reach `at_least` (a number or a reference like `measure`)."""

    name: str  # what is promised, in words
    measure: str  # "model.column", "max(a,b).column" or "curve_gain(a,b)"
    at_least: float | str  # a number, or a reference read the same way
    paper: str = ""  # the paper's value, for the column beside ours
    margin: float = 0.0  # added to `at_least`: "at least 3 points above trecx_plus's" is at_least=..., margin=3


def reference_targets(early: float, cut: float, paper: tuple[str, str, str]) -> tuple[Target, ...]:
    """The targets of a task whose trade-offs are measured against the MLPerf reference: trecx's final exit at
    least the reference's, its early exit at least `early`, the best FLOPs cut at <= 1 point of trecx and
    trecx_plus at least `cut` (%); `paper`: the paper's values of the three (its Table 1)."""
    return (Target("trecx final exit at least the MLPerf reference", "trecx.final_test_accuracy",
                   "mlperf_reference.final_test_accuracy", paper[0]),
            Target("trecx early exit", "trecx.early_exit_test_accuracy", early, paper[1]),
            Target("FLOPs cut at <= 1 point, best of trecx / trecx_plus (%)",
                   "max(trecx,trecx_plus).test_flops_reduction_pct_1pt", cut, paper[2]))


def two_exit_target() -> Target:
    """Two early exits (`trecx2`, a threshold per exit, chosen on validation) against the best one-exit design
    (`trecx_plus`) at the same 1-point budget: a FLOPs cut at least 3 points higher on test."""
    return Target("trecx2 (two exits, a threshold per exit) FLOPs cut at <= 1 point, at least trecx_plus's + 3 (%)",
                  "trecx2.vector_test_flops_reduction_pct_1pt", "trecx_plus.test_flops_reduction_pct_1pt",
                  "none", margin=3.0)


@dataclass(frozen=True)
class Task:
    """A task: its data, the model its trade-offs are measured against, and its figures."""

    name: str  # the task's package (image_classification, ...)
    input_shape: tuple[int, ...]  # one model input, without the batch axis
    classes: tuple[str, ...]  # class names in label order
    baseline: str  # the model the trade-offs are measured against: "baseline" (ours) or "mlperf_reference"
    load: Callable[[str, int], EvalData]  # (data root or "", split seed) -> the evaluation data
    train_data: Callable[[typing.Any], tuple]  # training config -> (train batches, val batches, data info)
    reference: Callable[[], object] | None = None  # the MLPerf reference model, when there is one to load
    curves: dict[str, list[str]] = field(default_factory=dict)  # benefit-curve figure -> models drawn
    violin: tuple[str, str] | None = None  # two models whose early-exit confidence Fig 5 compares
    extra: Callable[[dict, Path, EvalData, Path], None] | None = None  # (models, results, data, models dir)
    smoke_variants: tuple[str, ...] = ("trecx",)  # what a smoke run trains when nothing is shipped
    targets: tuple[Target, ...] = ()  # what its results must reach (checked by the targets command)
    study: Study | None = None  # the exit width x position study (the exit_study command)
    dataset: str = ""  # the folder (or archive) under the data root its data is found in
    field: Callable[[str, int], FieldData] | None = None  # (data root or "", split seed) -> raw test samples


_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task's spec; a name registered twice, or one outside NAMES, is refused."""
    if task.name in _TASKS:
        raise ValueError(f"task '{task.name}' is already registered")
    if task.name not in NAMES:
        raise ValueError(f"task '{task.name}' is not in common.tasks.NAMES")
    _TASKS[task.name] = task
    return task


def check(name: str) -> str:
    """`name` when it is one of NAMES (without importing the task, and TensorFlow with it)."""
    if name not in NAMES:
        raise ConfigError(f"--task must be one of {', '.join(NAMES)}, got '{name}'")
    return name


def get(name: str) -> Task:
    """The spec of task `name` (importing `<name>.task`, where it registers itself)."""
    if check(name) not in _TASKS:
        module(name, "task")
    return _TASKS[name]


def all_tasks() -> list[Task]:
    return [get(n) for n in NAMES]
