"""Ship the best design of ours beside the paper's `trecx`, chosen on validation only:

    python -m common promote --task image_classification --candidates trecx_sd trecx_dwfirst --ship-as trecx_plus
    python -m common promote --task keyword_spotting --candidates trecx2_ee1_ee3 trecx2_ee1_ee2 --ship-as trecx2 \
        --paper "" --vector true      # two-exit designs, on their cut with a threshold per exit

Every candidate (and `trecx`) must be in pretrained/<task>/ and tested (`<task>.test` wrote
results/<task>/<variant>/summary.json); `studies.promote` says how the winner is chosen and shipped.
Then run `<task>.test` again for its rows and curves, and `python -m common deploy --variant <ship-as>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common import paths, tasks
from common.config import parse
from common.errors import ConfigError
from common.studies.promote import PAPER, choose, ship

log = logging.getLogger("trecx.promote")


@dataclass
class PromoteConfig:
    """Options of `python -m common promote`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    candidates: tuple[str, ...] = ()  # designs of ours, each a tested pretrained/<task>/<variant>.keras
    ship_as: str = "trecx_plus"  # the name the winner ships under
    models_dir: str = ""  # "" = pretrained/<task>
    results_dir: str = ""  # "" = results/<task>
    paper: str = PAPER  # the paper's configuration, in the race too (nothing ships if it wins); "" = none
    vector: bool = False  # compare the cuts with a threshold per early exit (models with several early exits)


def run(cfg: PromoteConfig) -> str:
    """Choose and ship; returns the winner's name."""
    tasks.get(cfg.task)
    if not cfg.candidates:
        raise ConfigError("--candidates: name at least one design to compare with trecx")
    results = Path(cfg.results_dir or paths.results_dir() / cfg.task)
    best, cuts = choose(results, [*([cfg.paper] if cfg.paper else []), *cfg.candidates], cfg.vector)
    for v, c in cuts.items():
        log.info("%s: %s", v, "no rho within 1 point" if c is None else f"{c:.1f}% FLOPs cut on validation")
    ship(Path(cfg.models_dir or paths.pretrained_dir(cfg.task)), best, cfg.ship_as, cfg.paper, cfg.vector)
    return best


def main(argv: list[str] | None = None) -> str:
    return run(parse(PromoteConfig, None, argv, description=__doc__, required=("task",)))
