"""The presets of this task's finished searches: `--config` accepts them; its everyday list leaves them out."""

from .recipe import SEARCH

PRESETS = dict(SEARCH)
