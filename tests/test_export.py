"""TFLite export split at the exit, int8 conversion, and the early-exit runtime."""

from __future__ import annotations

import numpy as np
import pytest

from common import tasks
from common.edge import export
from common.edge.runtime import MultiExitRuntime, SingleRuntime
from common.models import registry

INPUTS = {t.name: t.input_shape for t in tasks.all_tasks()}


def _x(task: str, n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (n, *INPUTS[task])) if task != "keyword_spotting"
            else 5 * rng.standard_normal((n, *INPUTS[task]))).astype("float32")


@pytest.mark.parametrize("task", list(INPUTS))
def test_float_split_graphs_reproduce_the_keras_model(task: str):
    model = registry.get(task, "trecx").builder()
    head, tail = export.split_at_exits(model)
    h, t = export.TFLiteRunner(export.to_tflite(head)), export.TFLiteRunner(export.to_tflite(tail))
    for x in _x(task, 2):
        want = model(x[None], training=False)
        got = h(x)
        assert np.abs(got["early_exit"] - want["early_exit"][0]).max() < 1e-4
        assert np.abs(t(got["features"])["final"] - want["final"][0]).max() < 1e-4


def test_runtime_runs_the_tail_only_below_rho():
    model = registry.get("keyword_spotting", "trecx").builder()
    head, tail = (export.to_tflite(m) for m in export.split_at_exits(model))
    x = _x("keyword_spotting")
    always = MultiExitRuntime([head, tail], [0.0])
    assert {always(s).exit for s in x} == {"early_exit"} and always.runs[1] == 0
    never = MultiExitRuntime([head, tail], [1.01])
    preds = [never(s) for s in x]
    assert never.runs[1] == len(x) and {p.exit for p in preds} == {"final"}
    full = model(x, training=False)["final"].numpy()
    assert [p.label for p in preds] == list(full.argmax(1))


def test_int8_graphs_are_full_integer_and_smaller():
    model = registry.get("keyword_spotting", "baseline").builder()
    x = _x("keyword_spotting", 16)
    f32, i8 = export.to_tflite(model), export.to_tflite(model, representative=x)
    runner = export.TFLiteRunner(i8)
    assert runner.input["dtype"] == np.int8
    assert len(i8) < 0.5 * len(f32)  # int8 weights; metadata and int32 biases keep small models above 1/4
    p = SingleRuntime(i8)(x[0])
    assert p.probs.shape == (12,) and abs(float(p.probs.sum()) - 1) < 0.05
