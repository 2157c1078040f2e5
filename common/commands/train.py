"""Train one model variant of a task (what every `<task>.train` runs):

    python -m image_classification.train --variant trecx

The task's `config.py` gives the config class and its presets; the task's spec gives its training data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import tasks
from ..config import TrainConfig, parse
from ..errors import ConfigError
from ..models import registry
from ..train.distribute import setup
from ..train.runs import run_dir
from ..train.training import train


def run(cfg: TrainConfig) -> Path:
    """Train `cfg.variant` of `cfg.task`; returns the run folder (see common.train.runs)."""
    task = tasks.get(cfg.task)
    registry.get(task.name, cfg.variant)  # an unknown variant fails before any data is read
    setup(cfg)  # threads and strategy, before any TF op
    train_ds, val_ds, info = task.train_data(cfg)
    return train(cfg, task.name, train_ds, val_ds, info=info)


def run_folder(cfg: TrainConfig) -> Path:
    """Where `run(cfg)` trains (and resumes)."""

    return run_dir(cfg, cfg.task)


def parse_task(task: str, argv: list[str] | None, description: str = "") -> TrainConfig:
    """The config of `task`'s training from its command line: the presets and fields of `<task>/config.py`,
    and (accepted, not listed) those of its finished searches."""
    module = tasks.module(task, "config")
    return parse(module.Config, module.PRESETS, argv, description=description, fixed={"task": task},
                 searches=search_presets(task))


def preset(task: str, name: str = "default", **fields) -> TrainConfig:
    """The training config of preset `name` of `task` (an everyday or a search preset), with `fields` set:
    what another command trains with, as `<task>.train --config NAME --field value` would."""
    module = tasks.module(task, "config")
    known = {**search_presets(task), **module.PRESETS}
    if name not in known:
        raise ConfigError(f"{task} has no training preset '{name}' (one of {', '.join(sorted(module.PRESETS))})")
    return dataclasses.replace(known[name], preset=name, task=task, **fields)


def search_presets(task: str) -> dict:
    """The presets of a task's finished searches (`<task>/searches/`), or none."""
    try:
        return tasks.module(task, "searches").PRESETS
    except ModuleNotFoundError:
        return {}


def main(task: str, argv: list[str] | None = None, description: str = "") -> Path:
    return run(parse_task(task, argv, description))
