"""Copy weights layer by layer into our builders: from our own `.keras` models (warm starts) and
from the MLPerf Tiny reference files (Keras 2 `.h5`, TF SavedModel checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from .. import paths
from ..errors import ConfigError, ModelFileError
from . import contract, registry
from .contract import load_model

_is_head = contract.is_head  # exit heads: never part of a backbone


def from_h5(path: Path | str) -> list[tuple[str, list[np.ndarray]]]:
    """(layer name, weights) of every layer with weights of a Keras 2 `.h5` model, in graph order.
    Reads the file directly, so legacy config keys (such as `groups` on DepthwiseConv2D) never matter."""
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        group = f["model_weights"]
        out = []
        for layer in config["config"]["layers"]:
            name = layer["config"]["name"]
            names = [n.decode() if isinstance(n, bytes) else n for n in group[name].attrs.get("weight_names", [])]
            if names:
                out.append((name, [np.array(group[name][n]) for n in names]))
    return out


_CKPT_ORDER = ("kernel", "depthwise_kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def from_checkpoint(saved_model_dir: Path | str) -> list[tuple[str, list[np.ndarray]]]:
    """(layer id, weights) from a Keras-made SavedModel's variables, in `layer_with_weights-N` order
    (needs no loading of the graph, whose Keras 2 optimizer state TF 2.21 cannot restore)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(Path(saved_model_dir) / "variables" / "variables"))
    layers: dict[int, dict[str, np.ndarray]] = {}
    for key in reader.get_variable_to_shape_map():
        parts = key.split("/")
        if parts[0].startswith("layer_with_weights-") and len(parts) == 4:
            layers.setdefault(int(parts[0].split("-")[1]), {})[parts[1]] = reader.get_tensor(key)
    return [(f"layer_with_weights-{i}", [layers[i][n] for n in _CKPT_ORDER if n in layers[i]]) for i in sorted(layers)]


def from_keras(path: Path | str) -> list[tuple[str, list[np.ndarray]]]:
    """(layer name, weights) of the backbone layers (and final classifier) of one of our `.keras`
    models, in graph order."""
    model = load_model(path)
    return [(layer.name, layer.get_weights()) for layer in model.layers if layer.weights and not _is_head(layer.name)]


def load_backbone(model: keras.Model, source: list[tuple[str, list[np.ndarray]]], strict: bool = True) -> int:
    """Copy `source` weights into `model`'s layers in graph order, pairing layers with weights and
    skipping the early-exit heads. Every source layer must find a layer of the same shapes, except
    that, unless `strict`, a final classifier with more inputs (an EV-assisted model's) takes the
    source kernel in its first rows and zeros in the others, so the warm-started model starts out
    predicting exactly as the source. Returns the number of layers copied."""
    targets = [layer for layer in model.layers if layer.weights and not _is_head(layer.name)]
    src = [(n, w) for n, w in source if not _is_head(n)]
    if len(src) != len(targets):
        raise ValueError(f"source has {len(src)} layers with weights outside exit heads, {model.name} has "
                         f"{len(targets)}")
    copied = 0
    for (name, weights), layer in zip(src, targets, strict=True):
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(w.shape) for w in weights]
        if want != got:
            if not strict and layer.name == "final" and len(got) == 2 and got[0][1:] == want[0][1:] \
                    and got[0][0] < want[0][0] and got[1] == want[1]:
                kernel = np.zeros(want[0], np.float32)
                kernel[: got[0][0]] = weights[0]
                layer.set_weights([kernel, weights[1]])
                copied += 1
                continue
            raise ValueError(f"cannot copy source layer '{name}' {got} into '{layer.name}' {want} of {model.name}")
        layer.set_weights(weights)
        copied += 1
    return copied


def warm_start(model: keras.Model, path: Path | str) -> int:
    """Initialise `model`'s backbone from a `.keras` model, a Keras 2 `.h5` or a SavedModel folder
    (`path` as configs record it: see `paths.resolve`)."""
    p = paths.resolve(str(path))
    if not p.exists():
        raise ConfigError(f"--init-from: {p} does not exist")
    try:
        if p.is_dir():
            return load_backbone(model, from_checkpoint(p), strict=False)
        return load_backbone(model, from_h5(p) if p.suffix == ".h5" else from_keras(p), strict=False)
    except (OSError, ValueError) as e:
        raise ModelFileError(f"--init-from: cannot warm-start {model.name} from {p}: {e}") from e


def reference_model(task: str, path: str) -> keras.Model:
    """The task's `baseline` builder with an MLPerf reference model's weights copied in (a SavedModel
    folder or a Keras 2 .h5, `path` as configs record it)."""

    model = registry.get(task, "baseline").builder()
    warm_start(model, path)
    return model
