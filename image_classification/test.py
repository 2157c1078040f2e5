"""Evaluate the ResNet-8 models of a folder on CIFAR-10: python -m image_classification.test"""

from __future__ import annotations

from pathlib import Path

from common import report
from common.images import load_cifar10, write_split

TASK = "image_classification"
CURVES = {"fig4a_benefit_curves.png": ["trecx", "trecx_noev"]}


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = load_cifar10(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json", subsets=("val", "test"))  # train: the rest
    return {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}, data.info


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, "baseline", CURVES, violin=("trecx", "pool_ee"), doc=__doc__)


if __name__ == "__main__":
    main()
