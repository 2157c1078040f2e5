"""Evaluate the ResNet-8 models of a folder on CIFAR-10: python -m image_classification.test"""

from __future__ import annotations

from pathlib import Path

from common import paths, report
from common.config import parse
from common.images import load_cifar10, write_split

TASK = "image_classification"
CURVES = {"fig4a_benefit_curves.png": ["trecx", "trecx_noev"]}


def main(argv: list[str] | None = None) -> list[dict]:
    cfg = parse(report.TestConfig, {"default": report.TestConfig()}, argv, description=__doc__)
    models_dir = Path(cfg.models_dir or paths.REPO / "pretrained" / TASK)
    out = Path(cfg.out_dir or paths.results_dir() / TASK)
    models = report.load_models(models_dir)
    if "baseline" not in models:
        raise FileNotFoundError(f"no baseline.keras in {models_dir}: train one with "
                                f"python -m {TASK}.train --variant baseline --publish true")
    data = load_cifar10(cfg.data_dir or None, seed=cfg.split_seed)
    write_split(data, out / "split.json", subsets=("val", "test"))  # train: the rest
    xy = {s: (data.x[s].astype("float32"), data.y[s]) for s in ("val", "test")}
    return report.run(models, xy, out, "baseline", CURVES, violin=("trecx", "pool_ee"), config=cfg, info=data.info)


if __name__ == "__main__":
    main()
