"""Evaluate the DS-CNN models of a folder on Speech Commands: python -m keyword_spotting.test

The trade-offs are measured against the MLPerf Tiny reference DS-CNN on the same clips; our own
`baseline` (when present) is reported beside it."""

from __future__ import annotations

import json
from pathlib import Path

from common import audio, paths, registry, report, weights
from common.config import parse
from keyword_spotting.config import REFERENCE

TASK = "keyword_spotting"
CURVES = {"fig4b_benefit_curves.png": ["trecx", "trecx_noev"],
          "fig6_weight_transfer.png": ["trecx", "trecx_notransfer", "eefmaps_concat"]}


def reference_model():
    """The MLPerf reference DS-CNN, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_checkpoint(REFERENCE))
    return model


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse(report.TestConfig, {"default": report.TestConfig()}, argv, description=__doc__)
    models_dir = Path(cfg.models_dir or paths.REPO / "pretrained" / TASK)
    out = Path(cfg.out_dir or paths.results_dir() / TASK)
    models = {"mlperf_reference": reference_model()} | report.load_models(models_dir)
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps(data.info | {"files": data.names}, indent=1))
    xy = {s: (audio.features(data.wav[s]), data.y[s]) for s in ("val", "test")}
    return report.run(models, xy, out, "mlperf_reference", CURVES, config=cfg, info=data.info)


if __name__ == "__main__":
    main()
