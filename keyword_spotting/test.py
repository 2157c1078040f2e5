"""Evaluate the DS-CNN models of a folder on Speech Commands: python -m keyword_spotting.test

The trade-offs are measured against the MLPerf Tiny reference DS-CNN on the same clips; our own
`baseline` (when present) is reported beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common import audio, registry, report, weights
from keyword_spotting.config import REFERENCE

TASK = "keyword_spotting"
CURVES = {"fig4b_benefit_curves.png": ["trecx", "trecx_noev"],
          "fig6_weight_transfer.png": ["trecx", "trecx_notransfer", "eefmaps_concat"]}
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def reference_model():
    """The MLPerf reference DS-CNN, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_checkpoint(REFERENCE))
    return model


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps(data.info | {"files": data.names}, indent=1))
    return {s: (audio.features(data.wav[s]), data.y[s]) for s in ("val", "test")}, data.info


def calibration(cfg: report.TestConfig, n: int) -> np.ndarray:
    """MFCCs of `n` random training clips (no augmentation), for int8 calibration."""
    wav = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed).wav["train"]
    return audio.features(wav[np.random.default_rng(cfg.split_seed).permutation(len(wav))[:n]])


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, BASELINE, CURVES, reference=reference_model, doc=__doc__)


if __name__ == "__main__":
    main()
