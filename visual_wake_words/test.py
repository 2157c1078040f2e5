"""Evaluate the MobileNetV1 models of a folder on Visual Wake Words: python -m visual_wake_words.test

The trade-offs are measured against the MLPerf Tiny reference model on the same test images."""

from __future__ import annotations

from pathlib import Path

from common import registry, report, weights
from common.images import load_vww, write_split
from visual_wake_words.config import REFERENCE

TASK = "visual_wake_words"
CURVES = {"fig4c_benefit_curves.png": ["trecx", "trecx_noev"]}


def reference_model():
    """The MLPerf reference MobileNetV1, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_h5(REFERENCE))
    return model


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = load_vww(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json")
    return {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}, data.info


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, "mlperf_reference", CURVES, reference=reference_model, doc=__doc__)


if __name__ == "__main__":
    main()
