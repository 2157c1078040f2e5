"""Train a ResNet-8 variant on CIFAR-10: python -m image_classification.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from common import cli
from common.data.images import load_cifar10
from common.data.pipelines import eval_dataset, image_train_dataset
from common.models import registry
from common.train.distribute import setup
from common.train.training import train
from image_classification.config import PRESETS, Config

TASK = "image_classification"


def main(argv: list[str] | None = None) -> Path:
    from common.config import parse

    cfg: Config = parse(Config, PRESETS, argv, description=__doc__)
    registry.get(TASK, cfg.variant)  # an unknown variant fails before any data is read
    setup(cfg)  # threads and strategy, before any TF op
    data = load_cifar10(cfg.data_dir or None, seed=cfg.split_seed, val_fraction=cfg.val_fraction,
                        test_fraction=cfg.test_fraction)
    train_ds = image_train_dataset(data.x["train"], data.y["train"], cfg.batch_size, cfg.seed,
                                   rotation=cfg.rotation, shift=cfg.shift, flip=cfg.flip, pad_crop=cfg.pad_crop)
    return train(cfg, TASK, train_ds, eval_dataset(data.x["val"], data.y["val"]), info=data.info)


if __name__ == "__main__":
    cli.run(main)
