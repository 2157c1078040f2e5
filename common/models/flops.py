"""FLOPs and parameters per exit path, counted layer by layer (MFLOPs = 2 x MACs, as the paper).

What is counted, per sample (`COUNTERS`, one counter per layer class; `register` adds one for a layer of
your own):
- convolutions, 1-D to 3-D, and their grouped, depthwise, separable and transposed forms, and dense layers:
  2 x MACs, plus one add per output for a bias. A transposed conv is counted as the scatter it is (every input
  element times the kernel times the output channels), the MACs of the conv it transposes; TF's profiler
  approximates it from the output size, which agrees for "same" padding;
- batch normalization: 2 ops per element (scale and shift: at inference it is an affine map, folded into
  the conv before it by the int8 converter, so this overstates a deployed graph slightly); normalization and
  rescaling likewise 2;
- elementwise merges (add, subtract, multiply, maximum, minimum): one op per output per extra input;
  average: one per input; PReLU: one multiply per element;
- pooling, 1-D to 3-D, average or max, global or not: one op per input element;
- nested models: the sum of their layers; our composite exit layers: the sum of their sublayers (`trace`).
ReLU and other activations, softmax, concatenation, reshapes, slicing and dropout count zero. A layer with
weights that no counter knows raises a one-line `FlopsError` naming it, never a silent 0.
`profiler_flops` gives TF's own count, which tests/test_models.py checks every counter against.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from ..errors import ModelError
from . import contract

Counter = Callable[[layers.Layer, list[tuple], tuple], int]
COUNTERS: dict[type, Counter] = {}


class FlopsError(ModelError):
    """A layer the FLOPs counter does not know (it has weights, so counting it 0 would be wrong)."""


def register(*classes: type) -> Callable[[Counter], Counter]:
    """Decorator: `fn(layer, input shapes, output shape) -> FLOPs of one sample` counts these layer classes (and
    their subclasses); a class already registered is refused."""

    def add(fn: Counter) -> Counter:
        for cls in classes:
            if cls in COUNTERS:
                raise ValueError(f"a FLOPs counter for {cls.__name__} is already registered")
            COUNTERS[cls] = fn
        return fn

    return add


def _n(shape) -> int:
    return int(math.prod(d for d in shape[1:] if d is not None))


def _bias(layer, out_shape) -> int:
    return _n(out_shape) if getattr(layer, "use_bias", False) else 0


@register(layers.Conv1D, layers.Conv2D, layers.Conv3D)
def _conv(layer, ins, out) -> int:
    k = math.prod(layer.kernel_size) * ins[0][-1] // layer.groups
    return 2 * _n(out) * k + _bias(layer, out)


@register(layers.DepthwiseConv1D, layers.DepthwiseConv2D)
def _depthwise(layer, ins, out) -> int:
    return 2 * _n(out) * math.prod(layer.kernel_size) + _bias(layer, out)


@register(layers.SeparableConv1D, layers.SeparableConv2D)
def _separable(layer, ins, out) -> int:
    spatial, mid = _n(out) // out[-1], ins[0][-1] * layer.depth_multiplier
    return 2 * spatial * mid * (math.prod(layer.kernel_size) + out[-1]) + _bias(layer, out)


@register(layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
def _transposed(layer, ins, out) -> int:
    return 2 * _n(ins[0]) * math.prod(layer.kernel_size) * out[-1] + _bias(layer, out)


@register(layers.Dense)
def _dense(layer, ins, out) -> int:
    return 2 * _n(out) * ins[0][-1] + _bias(layer, out)


@register(layers.BatchNormalization, layers.Rescaling, layers.Normalization)
def _affine(layer, ins, out) -> int:
    return 2 * _n(out)


@register(layers.Add, layers.Subtract, layers.Multiply, layers.Maximum, layers.Minimum)
def _merge(layer, ins, out) -> int:
    return _n(out) * (len(ins) - 1)


@register(layers.Average)
def _average(layer, ins, out) -> int:
    return _n(out) * len(ins)


@register(layers.PReLU)
def _prelu(layer, ins, out) -> int:
    return _n(out)


@register(layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D, layers.MaxPooling1D,
          layers.MaxPooling2D, layers.MaxPooling3D, layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
          layers.GlobalAveragePooling3D, layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D,
          layers.GlobalMaxPooling3D)
def _pooling(layer, ins, out) -> int:
    return _n(ins[0])


def _counter(layer: layers.Layer) -> Counter | None:
    for cls in type(layer).__mro__:
        if cls in COUNTERS:
            return COUNTERS[cls]
    return None


def layer_flops(layer: layers.Layer, in_shapes: list[tuple], out_shape: tuple) -> int:
    """FLOPs of one call of `layer` on a single sample (see the module docstring)."""
    if hasattr(layer, "trace"):  # our composite layers
        return sum(layer_flops(sub, [i], o) for sub, i, o in layer.trace(in_shapes[0]))
    if isinstance(layer, keras.Model):  # a nested backbone: its own layers, at the shapes it was built for
        return sum(layer_flops(x, _shapes(x.input), _shapes(x.output)[0]) for x in layer.layers
                   if not isinstance(x, layers.InputLayer))
    counter = _counter(layer)
    if counter is not None:
        return int(counter(layer, in_shapes, out_shape))
    if layer.weights:
        raise FlopsError(f"layer '{layer.name}' (a {type(layer).__name__}) has weights but no FLOPs counter: "
                         "register one with common.models.flops.register")
    return 0


def _shapes(t) -> list[tuple]:
    return [tuple(x.shape) for x in (t if isinstance(t, (list, tuple)) else [t])]


def _params(layer: layers.Layer) -> int:
    return int(sum(np.prod(w.shape) for w in layer.weights))


def path_layers(model: keras.Model, outputs: list[str]) -> list[layers.Layer]:
    """The layers that computing `outputs` (output names) needs, in graph order."""
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in outputs])
    return [layer for layer in sub.layers if not isinstance(layer, layers.InputLayer)]


confidence_of = contract.confidence_of


def mflops_of(ls: list[layers.Layer]) -> float:
    """MFLOPs of one sample through the layers `ls`."""
    return sum(layer_flops(x, _shapes(x.input), _shapes(x.output)[0]) for x in ls) / 1e6


def path_mflops(model: keras.Model, names: list[str]) -> float:
    """MFLOPs of computing the outputs of the layers `names` (`path_layers`)."""
    return mflops_of(path_layers(model, names))


def exit_costs(model: keras.Model) -> dict[str, dict[str, float]]:
    """Per exit, in exit order: MFLOPs and parameters of everything a sample that leaves there ran
    (every earlier exit head and confidence head included, since they were evaluated to decide),
    plus the standalone cost of the exit alone (its own path, no other exit head)."""
    names = contract.exit_names(model)

    def with_confidence(exits: list[str]) -> list[str]:
        return exits + [c for c in (confidence_of(model, e) for e in exits) if c]

    out = {}
    for i, name in enumerate(names):
        ran = path_layers(model, with_confidence(names[: i + 1]))
        alone = path_layers(model, [name])
        out[name] = {
            "mflops": mflops_of(ran),
            "params": sum(_params(x) for x in ran),
            "mflops_alone": mflops_of(alone),
            "params_alone": sum(_params(x) for x in alone),
        }
    return out


def baseline_costs(model: keras.Model) -> dict[str, dict[str, float]]:
    """`exit_costs` of a network without exits (its one output counted as `final`)."""
    ls = [x for x in model.layers if not isinstance(x, layers.InputLayer)]
    mflops = mflops_of(ls)
    params = sum(_params(x) for x in ls)
    return {contract.FINAL: {"mflops": mflops, "params": params, "mflops_alone": mflops, "params_alone": params}}


def profiler_flops(model: keras.Model, output: str = "final") -> int:
    """TF profiler FLOPs of one output on batch 1, on a frozen concrete function (a cross-check)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    fn = tf.function(lambda x: model(x, training=False)[output] if isinstance(model.output, dict)
                     else model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    opts = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
    opts = opts.with_empty_output().build()
    info = model_analyzer.profile(graph=frozen.graph, options=opts)
    return int(info.total_float_ops)
