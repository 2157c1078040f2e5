"""The presets of this task's finished searches: `--config` accepts them; its everyday list leaves them out."""

from .distill import DISTILL_SEARCH

PRESETS = dict(DISTILL_SEARCH)
