"""Write a task's model card, results/<task>/MODEL_CARD.md, from its results files (`reporting.card`):

    python -m common model_card --task keyword_spotting

One row per shipped variant (`trecx`, and `trecx_plus` where a design of ours measured better), then each
variant's card: model, data, training, accuracy, the early-exit trade-offs, int8 deployment, latency, limits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import files, paths, tasks
from ..config import parse
from ..evaluation.summary import exists
from ..reporting.card import card, overview

log = logging.getLogger("trecx.model_card")


@dataclass
class CardConfig:
    """Options of `python -m common model_card`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    variants: tuple[str, ...] = ("trecx", "trecx_plus")  # the models the card describes (those tested)


def run(cfg: CardConfig) -> Path:
    """Write the card; returns its path."""
    tasks.get(cfg.task)  # a known task, or a one-line error
    res = paths.results_dir() / cfg.task
    variants = [v for v in cfg.variants if exists(res, v)] or list(cfg.variants[:1])
    out = res / "MODEL_CARD.md"
    files.write_text(out, "\n".join([overview(cfg.task, variants), *(card(cfg.task, v) for v in variants)]))
    log.info(f"{paths.portable(out)}")
    return out


def main(argv: list[str] | None = None) -> Path:
    return run(parse(CardConfig, None, argv, description=__doc__, required=("task",)))
