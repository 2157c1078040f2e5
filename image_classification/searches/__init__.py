"""The presets of this task's finished searches: `--config` accepts them; its everyday list leaves them out."""

from image_classification.searches.recipe import SEARCH

PRESETS = dict(SEARCH)
