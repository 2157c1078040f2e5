"""Evaluate the MobileNetV1 models of a folder on Visual Wake Words: python -m visual_wake_words.test

The trade-offs are measured against the MLPerf Tiny reference model on the same test images."""

from __future__ import annotations

from pathlib import Path

from common import paths, registry, report, weights
from common.config import parse
from common.images import load_vww, write_split
from visual_wake_words.config import REFERENCE

TASK = "visual_wake_words"
CURVES = {"fig4c_benefit_curves.png": ["trecx", "trecx_noev"]}


def reference_model():
    """The MLPerf reference MobileNetV1, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_h5(REFERENCE))
    return model


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse(report.TestConfig, {"default": report.TestConfig()}, argv, description=__doc__)
    models_dir = Path(cfg.models_dir or paths.REPO / "pretrained" / TASK)
    out = Path(cfg.out_dir or paths.results_dir() / TASK)
    models = {"mlperf_reference": reference_model()} | report.load_models(models_dir)
    data = load_vww(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json")
    xy = {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}
    return report.run(models, xy, out, "mlperf_reference", CURVES, config=cfg, info=data.info)


if __name__ == "__main__":
    main()
