"""The MobileNetV1 on Visual Wake Words task: its data for testing and deployment, the int8 report, and
its Task spec.

The trade-offs are measured against the MLPerf Tiny reference model on the same test images; the
T-RecX model is also quantized to full-integer int8 (calibrated on training images only)."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import keras

from trecx import files, tasks
from trecx.data.images import VWW_CLASSES, load_vww
from trecx.data.pipelines import image_training_data
from trecx.data.splits import hold_out
from trecx.edge.export import int8_report
from trecx.models import weights

from . import model
from .config import REFERENCE

log = logging.getLogger("trecx.int8")

NAME = "visual_wake_words"
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def load(data_dir: str, split_seed: int) -> tasks.EvalData:
    """Validation, calibration and test images; int8 samples: random training images (both classes)."""
    return hold_out(tasks.image_eval_data(load_vww(data_dir or None, seed=split_seed), split_seed), split_seed)


def train_data(cfg) -> tuple:
    """Augmented training batches and validation batches of `cfg` (a config.Config)."""
    data = load_vww(cfg.data_dir or None, seed=cfg.split_seed, val_fraction=cfg.val_fraction,
                    test_fraction=cfg.test_fraction)
    return image_training_data(data, cfg, zoom=cfg.zoom)


def int8(models: dict[str, keras.Model], out: Path, data: tasks.EvalData, models_dir: Path) -> None:
    """int8.json: size and accuracy of the int8 T-RecX model against its float version."""
    if "trecx" not in models:
        return
    rec = int8_report(models["trecx"], data.int8_samples(200), *data.splits["test"])
    rec["calibration"] = "200 random images of the training split"
    files.write_json(out / "int8.json", rec)
    log.info(f"trecx: {rec['size_reduction_pct']:.1f}% smaller; accuracy float {rec['float32_accuracy']} "
             f"int8 {rec['int8_accuracy']}")


# The targets; the paper's values from its Table 1 (../shared/papers/README.md).
TARGETS = tasks.reference_targets(0.80, 45.0, ("86.44% vs 85.81%", "80.46%", "36.3%"))

TASK = tasks.register(tasks.Task(
    dataset="visual_wake_words",
    name=NAME, input_shape=(96, 96, 3), classes=VWW_CLASSES, baseline=BASELINE, load=load, train_data=train_data,
    reference=partial(weights.reference_model, NAME, REFERENCE), extra=int8, targets=TARGETS,
    curves={"fig4c_benefit_curves.png": ["trecx", "trecx_plus", "trecx_noev", "trecx_dwfirst"]},
    study=tasks.Study(tuple(model.WIDTHS), model.STUDY_LAYERS, model.study_name, position_label="after layer"),
    field=tasks.image_field_data(load, ("low_light", "blur", "gaussian_noise", "contrast"))))
