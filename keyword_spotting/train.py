"""Train a DS-CNN variant on Speech Commands: python -m keyword_spotting.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from common import cli
from common.config import parse
from common.data import audio
from common.data.pipelines import eval_dataset
from common.models import registry
from common.train.distribute import setup
from common.train.training import train
from keyword_spotting.config import PRESETS, Config

TASK = "keyword_spotting"


def main(argv: list[str] | None = None) -> Path:
    cfg: Config = parse(Config, PRESETS, argv, description=__doc__)
    registry.get(TASK, cfg.variant)  # an unknown variant fails before any data is read
    setup(cfg)  # threads and strategy, before any TF op
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    train_ds = audio.train_dataset(data, cfg.batch_size, cfg.seed, cfg.silence_fraction)
    val_ds = eval_dataset(audio.features(data.wav["val"]), data.y["val"])
    return train(cfg, TASK, train_ds, val_ds, info=data.info)


if __name__ == "__main__":
    cli.run(main)
