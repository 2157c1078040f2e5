"""Distillation: the loss it adds, the student it saves, and a joint phase that moves the
backbone and alone supplies the kept model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import common  # noqa: F401  (registers the project's classes)
from common.models import registry
from common.train.distill import Distiller, kl
from common.train.training import compile_model


def _kl(t, p, temperature):
    def soft(q):
        z = np.log(np.clip(q, 1e-7, 1)) / temperature
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    a, b = soft(t), soft(p)
    return float(np.mean(np.sum(a * (np.log(a) - np.log(b)), -1)))


@pytest.mark.parametrize(("weight", "self_weight"), [(0.5, 0.0), (0.3, 0.7), (0.0, 1.0)])
def test_distillation_loss_is_the_documented_sum(weight: float, self_weight: float):
    student = registry.get("keyword_spotting", "trecx").builder()
    teacher = registry.get("keyword_spotting", "baseline").builder()
    w = {"early_exit": 0.3, "final": 1.0}
    distiller = Distiller(student, teacher, w, weight=weight, temperature=3.0, self_weight=self_weight)
    compile_model(distiller, w, keras.optimizers.SGD(0.0))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 49, 10, 1)).astype("float32"), rng.integers(0, 12, 6)
    logs = distiller.evaluate(x, {"early_exit": y, "final": y}, batch_size=6, verbose=0, return_dict=True)
    out, t = student(x, training=False), teacher(x, training=False)["final"]
    ce = keras.losses.SparseCategoricalCrossentropy()
    labels = sum(w[e] * float(ce(y, out[e])) for e in w)
    expected = (1 - weight) * labels + weight * 9 * sum(w[e] * _kl(np.asarray(t), np.asarray(out[e]), 3.0) for e in w)
    expected += self_weight * 9 * w["early_exit"] * _kl(np.asarray(out["final"]), np.asarray(out["early_exit"]), 3.0)
    expected += sum(float(v) for v in student.losses)  # L2 of the student only, never the teacher's
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert float(kl(t, t, 3.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_distilled_run_keeps_a_joint_epoch_and_logs_the_backbone_moving(tmp_path: Path):
    """--keep-joint: best.keras comes from the joint phase even when a head-only epoch had a lower
    validation loss; the log shows the backbone still during the head phase and moving after; the
    saved model is the plain student."""
    import tensorflow as tf

    from common.config import TrainConfig
    from common.train.training import train
    from keyword_spotting.model import dscnn

    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices((rng.standard_normal((32, 49, 10, 1)).astype("float32"),
                                             rng.integers(0, 12, 32))).batch(16)
    base = tmp_path / "base.keras"
    dscnn().save(base)
    cfg = TrainConfig(variant="trecx", out_dir=str(tmp_path / "run"), init_from=str(base), epochs=4, head_epochs=2,
                      batch_size=16, lr=1e-2, head_lr=1e-2, teacher=str(base), self_distill=0.5, keep_joint=True)
    run = train(cfg, "keyword_spotting", ds, ds)
    rows = list(csv.DictReader(open(run / "log.csv")))
    drift = [float(r["backbone_change"]) for r in rows]
    assert drift[:2] == [0.0, 0.0] and drift[2] > 0 and drift[3] > 0
    joint_best = min(float(r["val_loss"]) for r in rows[2:])
    assert json.loads((run / "done.json").read_text())["best"] == pytest.approx(joint_best)
    model = keras.models.load_model(run / "best.keras", compile=False)
    assert type(model).__name__ == "Functional" and set(model.output_names) == {"early_exit", "final"}
