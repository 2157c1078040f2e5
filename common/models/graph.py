"""A user's Keras classifier as the flat functional graph an exit is attached to.

Sequential models become functional ones; a single output given in a list or a dict is unwrapped; nested
models (a backbone used as a layer) are inlined, their layers addressed as `backbone/layer`; a user layer
whose name the exit's own layers take (`early_exit`, `final`, `ev_concat`, ...) is renamed in the copy. The
copy has its own layers with the user's weights and trainable flags, so the user's model is left as it was.
"""

from __future__ import annotations

import keras
from keras import layers

from common.errors import ModelError
from common.models import contract

# names the exit's own layers take (api.attach_exit, paper_exit.exit_heads): a user layer so named is renamed
RESERVED = (contract.FINAL, contract.EARLY, contract.MIXTURE, "ev_concat", "final_flatten")


def reserved(name: str) -> bool:
    """Whether `name` is one the exit's layers (or the contract's outputs) may take."""
    return name in RESERVED or contract.is_head(name)


def is_functional(model) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


def _as_functional(model: keras.Model) -> keras.Model:
    """A Sequential model called on a new input, as a functional model (its layer objects, no copy)."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        raise ModelError(f"Sequential model '{model.name}' has no input shape: start it with keras.Input(shape) "
                         "or build it") from None
    x = inputs = keras.Input(shape[1:], name=f"{model.name}_input")
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _nested(model: keras.Model) -> list[keras.Model]:
    return [la for la in model.layers if isinstance(la, keras.Model)]


class _Flat:
    """Rebuilds a functional graph with fresh copies of its layers, nested models inlined (recursively)."""

    def __init__(self, outer: keras.Model):
        self.copies: dict[int, tuple[layers.Layer, layers.Layer]] = {}  # id(original) -> (original, copy)
        self.addresses: dict[str, str] = {}  # the user's address of a layer -> its name in the copy
        self.taken = {la.name for la in outer.layers if not isinstance(la, keras.Model)}

    def _name(self, layer: layers.Layer, prefix: str) -> str:
        """A top-level layer keeps its name unless the exit's layers take it (then `user_<name>`); an inlined one is
        `<nested>.<name>`; either made unique with a number."""
        base = f"{prefix}{layer.name}"
        if not prefix and not reserved(base):
            return base  # already among `taken`
        name = f"user_{base}" if reserved(base) else base
        candidate, i = name, 1
        while candidate in self.taken:
            candidate, i = f"{name}_{i}", i + 1
        self.taken.add(candidate)
        return candidate

    def copy(self, layer: layers.Layer, prefix: str, address: str, training):
        if not isinstance(layer, layers.Layer):
            return layer  # a keras.ops operation (x + y on tensors): stateless, shared as it is
        if id(layer) not in self.copies:
            config = layer.get_config() | {"name": self._name(layer, prefix)}
            self.copies[id(layer)] = (layer, type(layer).from_config(config))
        clone = self.copies[id(layer)][1]
        self.addresses.setdefault(address, clone.name)
        if training is None or not getattr(clone, "_call_has_training_arg", False):
            return clone
        return lambda *a, **k: clone(*a, **(k | {"training": training}))

    def run(self, model: keras.Model, inputs, prefix: str = "", training=None):
        def op(layer):
            address = f"{prefix.replace('.', '/')}{layer.name}"
            if isinstance(layer, keras.Model):
                if isinstance(layer, keras.Sequential):
                    layer = _as_functional(layer)
                elif not is_functional(layer):
                    raise ModelError(f"layer '{address}' is a subclassed keras.Model nested in '{model.name}': "
                                     "nested models must be functional or Sequential")
                return lambda *a, **k: self.run(layer, a[0] if len(a) == 1 else list(a), f"{prefix}{layer.name}.",
                                                k.get("training", training))
            return self.copy(layer, prefix, address, training)

        return model._run_through_graph(inputs, operation_fn=op)

    def finish(self) -> None:
        """The user's weights and trainable flags into the copies (after the new graph has built them)."""
        for original, clone in self.copies.values():
            clone.set_weights(original.get_weights())
            clone.trainable = original.trainable


def functional(model: keras.Model, share: bool = False) -> tuple[keras.Model, dict[str, str]]:
    """The user's classifier as a flat functional model and the names its layers have there (the user's address,
    `layer` or `backbone/layer`, -> the name in it): a copy (weights and trainable flags too) unless `share`.
    A one-line ModelError for what it cannot take (a subclassed model, an unbuilt Sequential; with `share`, what
    would need a copy)."""
    if isinstance(model, keras.Sequential):
        if share:
            raise ModelError(f"model '{model.name}' is a Sequential model: share=True needs a functional one "
                             "(attach_exit works on a functional copy of it)")
        model = _as_functional(model)
    elif not is_functional(model):
        raise ModelError(f"model '{model.name}' is a subclassed keras.Model: attach_exit needs a functional or "
                         "Sequential model (rebuild it with keras.Input and layer calls)")
    out = model.output
    if isinstance(out, (list, tuple, dict)) and len(out) == 1:
        model = keras.Model(model.inputs, next(iter(out.values())) if isinstance(out, dict) else out[0],
                            name=model.name)
    if share:
        clash = [la.name for la in model.layers if reserved(la.name)]
        if _nested(model) or clash:
            what = (f"nests model '{_nested(model)[0].name}'" if _nested(model) else
                    f"has a layer named '{clash[0]}', a name the exit's own layers take")
            raise ModelError(f"model '{model.name}' {what}: share=True needs a flat model with none of these names "
                             "(without share, attach_exit works on a copy that inlines and renames)")
        return model, {la.name: la.name for la in model.layers}
    flat = _Flat(model)
    inputs = [keras.Input(t.shape[1:], dtype=t.dtype, name=t._keras_history[0].name) for t in model.inputs]
    inputs = inputs[0] if len(inputs) == 1 else inputs  # a single input as a tensor, as Keras expects it called
    copy = keras.Model(inputs, flat.run(model, inputs), name=model.name)
    flat.finish()
    return copy, flat.addresses
