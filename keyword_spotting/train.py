"""Train a DS-CNN variant on Speech Commands: python -m keyword_spotting.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from common import audio
from common.config import parse
from common.pipelines import eval_dataset
from common.training import get_strategy, train
from keyword_spotting.config import PRESETS, Config

TASK = "keyword_spotting"


def main(argv: list[str] | None = None) -> Path:
    cfg: Config = parse(Config, PRESETS, argv, description=__doc__)
    get_strategy(cfg.strategy)  # before any TF op (multi-worker needs it so)
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    train_ds = audio.train_dataset(data, cfg.batch_size, cfg.seed, cfg.silence_fraction)
    val_ds = eval_dataset(audio.features(data.wav["val"]), data.y["val"])
    return train(cfg, TASK, train_ds, val_ds, info=data.info)


if __name__ == "__main__":
    main()
