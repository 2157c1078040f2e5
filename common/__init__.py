"""Shared engine of trecx: data, early-exit layers, evaluation, FLOPs, plots, training.

Importing this package registers the custom Keras layers, so `.keras` files load with
`keras.models.load_model` after `import common`.
"""

from common import layers  # noqa: F401  (registers the serializable layers)
