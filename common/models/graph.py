"""A user's Keras classifier as the flat functional graph an exit is attached to, and what an exit needs to know
of that graph: its classifier, the feature map a layer taps, what each tensor is computed from.

Sequential models become functional ones; a single output given in a list or a dict is unwrapped; nested
models (a backbone used as a layer) are inlined, their layers addressed as `backbone/layer`; a user layer
whose name the exit's own layers take (`early_exit`, `final`, `ev_concat`, ...) is renamed in the copy. The
copy has its own layers with the user's weights and trainable flags, so the user's model is left as it was.
"""

from __future__ import annotations

import keras
from keras import layers
from keras.src.models.functional import Functional

from ..errors import ModelError
from . import contract

# names the exit's own layers take (api.attach_exit, paper_exit.exit_heads): a user layer so named is renamed
RESERVED = (contract.FINAL, contract.EARLY, contract.MIXTURE, "ev_concat", "final_flatten")


def reserved(name: str) -> bool:
    """Whether `name` is one the exit's layers (or the contract's outputs) may take."""
    return name in RESERVED or contract.is_head(name)


def is_functional(model) -> bool:

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


POOLINGS = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalMaxPooling1D,
            layers.GlobalMaxPooling2D)


def producer(tensor):
    return tensor._keras_history[0]


def ancestors(tensor) -> set[int]:
    """Ids of every tensor the value of `tensor` is computed from (itself included)."""
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        node = history[0]._inbound_nodes[history[1]]
        stack.extend(node.input_tensors)
    return seen


PASS_THROUGH = (layers.Activation, layers.Softmax, layers.Reshape, layers.Flatten, layers.Dropout)


def through(tensor):
    """Walk back from `tensor` over weightless reshaping layers (activation, reshape, flatten, dropout);
    returns (the first other layer, whether a softmax was passed)."""
    softmax = False
    layer = producer(tensor)
    while isinstance(layer, PASS_THROUGH):
        softmax |= isinstance(layer, layers.Softmax) or activation_name(layer) == "softmax"
        layer = producer(layer.input)
    return layer, softmax


def activation_name(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def classifier(model: keras.Model) -> layers.Layer:
    """The model's classifier: a Dense layer, or a 1x1 Conv2D as in keras.applications.MobileNet, followed
    (through reshapes) by a softmax; a one-line ModelError naming the model when there is none."""
    if len(model.inputs) != 1:
        raise ModelError(f"model '{model.name}' has {len(model.inputs)} inputs: an early exit needs a single-input "
                         "classifier")
    if isinstance(model.output, (dict, list, tuple)):
        raise ModelError(f"model '{model.name}' has several outputs: give it a single softmax classifier output")
    layer, softmax = through(model.output)
    dense = isinstance(layer, layers.Dense) or (isinstance(layer, (layers.Conv1D, layers.Conv2D)) and
                                                set(layer.kernel_size) == {1})
    if not dense or not (softmax or activation_name(layer) == "softmax"):
        raise ModelError(f"model '{model.name}' does not end in a softmax classifier (its last weighted layer "
                         f"'{layer.name}' is a {type(layer).__name__}{'' if softmax else ', with no softmax after'})")
    return layer


def check_crossing(model: keras.Model, tap, after: str) -> None:
    """A one-line ModelError when the network after the cut at `tap` reads a tensor from before it (a skip
    connection across the cut): the segments hand over one feature map, so the rest must be computed from it."""
    before = ancestors(tap) - {id(tap)}
    seen, stack = set(), [model.output]
    while stack:
        t = stack.pop()
        if t is tap or id(t) in seen:
            continue
        seen.add(id(t))
        layer, index = t._keras_history[0], t._keras_history[1]
        for x in layer._inbound_nodes[index].input_tensors:
            if id(x) in before:
                raise ModelError(f"layer '{layer.name}' of model '{model.name}' reads '{producer(x).name}' from "
                                 f"before the exit after '{after}' (a skip connection across the cut): tap the block "
                                 "after its merge, or earlier, so the rest of the network reads that map alone")
            stack.append(x)


def tap_of(model: keras.Model, after: str, addresses: dict[str, str]):
    """The feature map layer `after` (the user's address: `layer`, or `backbone/layer` inside a nested model)
    outputs in `model` (the flat copy, whose names `addresses` maps to)."""
    try:
        layer = model.get_layer(addresses.get(after, after))
    except ValueError:
        names = [a for a, n in addresses.items() if len(getattr(model.get_layer(n).output, "shape", ())) in (3, 4)]
        raise ModelError(f"model '{model.name}' has no layer '{after}' on the path from its input to its output "
                         f"(layers with a feature map: "
                         f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})") from None
    tap = layer.output
    if id(tap) not in ancestors(model.output):
        raise ModelError(f"layer '{after}' of model '{model.name}' is not on the path to its output")
    if len(tap.shape) not in (3, 4) or None in tap.shape[1:]:
        raise ModelError(f"layer '{after}' of model '{model.name}' outputs shape {tuple(tap.shape)}: the exit needs "
                         "a feature map of fixed size, (batch, height, width, channels) or (batch, steps, channels)")
    return tap


def keyed(model: keras.Model) -> tuple[keras.Model, bool]:
    """`model` with its outputs by name, and whether it is a network without exits (a baseline, or Sequential):
    then a flat copy whose one output is `final`."""
    if isinstance(getattr(model, "_outputs_struct", None), dict):
        return model, False
    copy = functional(model, share=False)[0]
    return keras.Model(copy.inputs, {contract.FINAL: copy.outputs[0]}, name=copy.name), True
