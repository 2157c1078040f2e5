"""Evaluate the MobileNetV1 models of a folder on Visual Wake Words: python -m visual_wake_words.test

The trade-offs are measured against the MLPerf Tiny reference model on the same test images; the
T-RecX model is also quantized to full-integer int8 (calibrated on training images only)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from common import files, paths, registry, report, weights
from common.export import int8_report
from common.images import load_vww, write_split
from visual_wake_words.config import REFERENCE

log = logging.getLogger("trecx.int8")

TASK = "visual_wake_words"
CURVES = {"fig4c_benefit_curves.png": ["trecx", "trecx_noev"]}
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def reference_model():
    """The MLPerf reference MobileNetV1, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_h5(paths.resolve(REFERENCE)))
    return model


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = load_vww(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json")
    return {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}, data.info


def calibration(cfg: report.TestConfig, n: int) -> np.ndarray:
    """`n` random training images (both classes), for int8 calibration."""
    x = load_vww(cfg.data_dir or None, seed=cfg.split_seed).x["train"]
    return x[np.random.default_rng(cfg.split_seed).permutation(len(x))[:n]].astype("float32")


def int8(cfg: report.TestConfig, models: dict[str, keras.Model], out: Path) -> None:
    """int8.json: size and accuracy of the int8 T-RecX model against its float version."""
    if "trecx" not in models:
        return
    data = load_vww(cfg.data_dir or None, seed=cfg.split_seed)
    rec = int8_report(models["trecx"], calibration(cfg, 200), data.x["test"].astype("float32"), data.y["test"])
    rec["calibration"] = "200 random images of the training split"
    files.write_json(out / "int8.json", rec)
    log.info(f"trecx: {rec['size_reduction_pct']:.1f}% smaller; accuracy float {rec['float32_accuracy']} "
             f"int8 {rec['int8_accuracy']}")


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, BASELINE, CURVES, reference=reference_model, doc=__doc__,
                       extra=int8)


if __name__ == "__main__":
    from common import cli

    cli.run(main)
