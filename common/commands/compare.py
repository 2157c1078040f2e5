"""T-RecX against the paper and the prior early-exit methods, from a task's results files
(Fig 7, Table 2, the paper's tables beside ours, comparison.md; `reporting.compare` writes them):

    python -m common compare --task keyword_spotting

Every task's test.py writes the same files; this command rewrites them from results/<task>/ alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import paths, tasks
from ..config import parse
from ..reporting.compare import write

log = logging.getLogger("trecx.compare")


@dataclass
class CompareConfig:
    """Options of `python -m common compare`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words


def run(cfg: CompareConfig) -> list[str]:
    """Rewrite the task's comparison files; returns the models shown."""
    shown = write(paths.results_dir() / cfg.task, tasks.get(cfg.task).baseline, cfg.task)
    log.info(f"{cfg.task}: {', '.join(shown)}")
    return shown


def main(argv: list[str] | None = None) -> list[str]:
    return run(parse(CompareConfig, None, argv, description=__doc__, required=("task",)))
