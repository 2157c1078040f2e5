"""FLOPs and parameters per exit path, counted layer by layer (MFLOPs = 2 x MACs, as the paper).

What is counted: conv, depthwise conv and dense as 2 x MACs plus one add per output for a bias;
batch norm as 2 ops per element (inference: scale and shift); add as one op per element per extra
input; pooling as one op per input element; rescaling as one op per element. ReLU, concat,
flatten, dropout and softmax count zero. `profiler_flops` gives TF's own count to check this one.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from common.models import contract


def _n(shape) -> int:
    return int(math.prod(d for d in shape[1:] if d is not None))


def layer_flops(layer: layers.Layer, in_shapes: list[tuple], out_shape: tuple) -> int:
    """FLOPs of one call of `layer` on a single sample."""
    if hasattr(layer, "trace"):  # our composite layers
        return sum(layer_flops(sub, [i], o) for sub, i, o in layer.trace(in_shapes[0]))
    out = _n(out_shape)
    bias = out if getattr(layer, "use_bias", False) else 0
    if isinstance(layer, layers.DepthwiseConv2D):
        k = math.prod(layer.kernel_size)
        return 2 * out * k + bias
    if isinstance(layer, layers.Conv2D):
        k = math.prod(layer.kernel_size) * in_shapes[0][-1] // layer.groups
        return 2 * out * k + bias
    if isinstance(layer, layers.Dense):
        return 2 * out * in_shapes[0][-1] + bias
    if isinstance(layer, layers.BatchNormalization):
        return 2 * out
    if isinstance(layer, layers.Add):
        return out * (len(in_shapes) - 1)
    if isinstance(layer, (layers.GlobalAveragePooling2D, layers.AveragePooling2D, layers.MaxPooling2D,
                          layers.GlobalMaxPooling2D)):
        return _n(in_shapes[0])
    if isinstance(layer, layers.Rescaling):
        return 2 * out
    return 0


def _shapes(t) -> list[tuple]:
    return [tuple(x.shape) for x in (t if isinstance(t, (list, tuple)) else [t])]


def _params(layer: layers.Layer) -> int:
    return int(sum(np.prod(w.shape) for w in layer.weights))


def path_layers(model: keras.Model, outputs: list[str]) -> list[layers.Layer]:
    """The layers that computing `outputs` (output names) needs, in graph order."""
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in outputs])
    return [layer for layer in sub.layers if not isinstance(layer, layers.InputLayer)]


exit_names = contract.exit_names  # re-exported: callers count exits through the contract
confidence_of = contract.confidence_of


def exit_costs(model: keras.Model) -> dict[str, dict[str, float]]:
    """Per exit, in exit order: MFLOPs and parameters of everything a sample that leaves there ran
    (every earlier exit head and confidence head included, since they were evaluated to decide),
    plus the standalone cost of the exit alone (its own path, no other exit head)."""
    names = exit_names(model)

    def total(ls: list[layers.Layer]) -> float:
        return sum(layer_flops(x, _shapes(x.input), _shapes(x.output)[0]) for x in ls) / 1e6

    def with_confidence(exits: list[str]) -> list[str]:
        return exits + [c for c in (confidence_of(model, e) for e in exits) if c]

    out = {}
    for i, name in enumerate(names):
        ran = path_layers(model, with_confidence(names[: i + 1]))
        alone = path_layers(model, [name])
        out[name] = {
            "mflops": total(ran),
            "params": sum(_params(x) for x in ran),
            "mflops_alone": total(alone),
            "params_alone": sum(_params(x) for x in alone),
        }
    return out


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
