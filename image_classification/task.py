"""Evaluate the ResNet-8 models of a folder on CIFAR-10: python -m image_classification.test"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import report
from common.images import load_cifar10, write_split

TASK = "image_classification"
CURVES = {"fig4a_benefit_curves.png": ["trecx", "trecx_noev"]}
BASELINE = "baseline"  # what the trade-offs are measured against
reference_model = None  # the MLPerf ResNet-8 saw our carved test images in training (see README)


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = load_cifar10(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json", subsets=("val", "test"))  # train: the rest
    return {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}, data.info


def calibration(cfg: report.TestConfig, n: int) -> np.ndarray:
    """`n` random training images, for int8 calibration."""
    x = load_cifar10(cfg.data_dir or None, seed=cfg.split_seed).x["train"]
    return x[np.random.default_rng(cfg.split_seed).permutation(len(x))[:n]].astype("float32")


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, BASELINE, CURVES, violin=("trecx", "pool_ee"), doc=__doc__)


if __name__ == "__main__":
    from common import cli

    cli.run(main)
