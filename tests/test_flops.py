"""The FLOPs counter (common.models.flops) on every layer type it counts, each against TF's own profiler."""

from __future__ import annotations

import keras
import pytest
from keras import layers as L

from common.models import flops


def _one(shape: tuple, layer: L.Layer) -> tuple[int, int]:
    """(our count, the profiler's) for `layer` alone on an input of `shape`."""
    x = keras.Input(shape)
    model = keras.Model(x, layer(x))
    return flops.layer_flops(layer, [tuple(x.shape)], tuple(model.output.shape)), flops.profiler_flops(model)


def _profiled(shape: tuple, *stack: L.Layer) -> int:
    x = keras.Input(shape)
    y = x
    for layer in stack:
        y = layer(y)
    return flops.profiler_flops(keras.Model(x, y))


# (input shape, the layer, what the profiler counts instead when it does not count the layer itself)
CASES = {
    "Conv1D": ((20, 3), lambda: L.Conv1D(8, 3), None),
    "Conv2D": ((10, 10, 3), lambda: L.Conv2D(8, 3, strides=2, padding="same"), None),
    "Conv3D": ((6, 6, 6, 2), lambda: L.Conv3D(4, 3), None),
    # the profiler skips grouped convs; 2 groups of 4 -> 8 channels do the MACs of one conv from 2 channels to 8
    "Conv2D-groups": ((10, 10, 4), lambda: L.Conv2D(8, 3, groups=2), lambda: _profiled((10, 10, 2), L.Conv2D(8, 3))),
    "SeparableConv1D": ((20, 3), lambda: L.SeparableConv1D(8, 3, depth_multiplier=2), None),
    "SeparableConv2D": ((10, 10, 3), lambda: L.SeparableConv2D(8, 3), None),
    "DepthwiseConv1D": ((20, 3), lambda: L.DepthwiseConv1D(3, depth_multiplier=2), None),
    "DepthwiseConv2D": ((10, 10, 3), lambda: L.DepthwiseConv2D(3, strides=2), None),
    # a transposed conv does the MACs of the conv it transposes (the profiler only estimates it, from its output)
    "Conv1DTranspose": ((10, 3), lambda: L.Conv1DTranspose(4, 3, strides=2, use_bias=False),
                        lambda: _profiled((21, 4), L.Conv1D(3, 3, strides=2, use_bias=False))),
    "Conv2DTranspose": ((5, 5, 3), lambda: L.Conv2DTranspose(4, 3, strides=2, use_bias=False),
                        lambda: _profiled((11, 11, 4), L.Conv2D(3, 3, strides=2, use_bias=False))),
    "Conv3DTranspose": ((4, 4, 4, 2), lambda: L.Conv3DTranspose(3, 3, use_bias=False),
                        lambda: _profiled((6, 6, 6, 3), L.Conv3D(2, 3, use_bias=False))),
    "Conv2DTranspose-same": ((5, 5, 3), lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same"), None),
    "Dense": ((16,), lambda: L.Dense(10), None),
    "Dense-3D": ((5, 16), lambda: L.Dense(10), None),
    "BatchNormalization": ((10, 10, 3), lambda: L.BatchNormalization(), None),
    "Rescaling": ((10, 10, 3), lambda: L.Rescaling(1 / 255, offset=-1), None),
    "Normalization": ((10, 3), lambda: L.Normalization(mean=0.5, variance=2.0), None),
    # PReLU is one multiply per element on a device; TF's graph for it runs four ops
    "PReLU": ((10, 3), lambda: L.PReLU(), lambda: _profiled((10, 3), L.Lambda(lambda t: t * 0.5))),
    "AveragePooling1D": ((20, 3), lambda: L.AveragePooling1D(2), None),
    "AveragePooling2D": ((10, 10, 3), lambda: L.AveragePooling2D(2), None),
    "MaxPooling2D": ((10, 10, 3), lambda: L.MaxPooling2D(2), None),
    "GlobalAveragePooling1D": ((20, 3), lambda: L.GlobalAveragePooling1D(), None),
    "GlobalAveragePooling2D": ((10, 10, 3), lambda: L.GlobalAveragePooling2D(), None),
    # the profiler counts no max reduction; a global max reads what a global average reads
    "GlobalMaxPooling2D": ((10, 10, 3), lambda: L.GlobalMaxPooling2D(),
                           lambda: _profiled((10, 10, 3), L.GlobalAveragePooling2D())),
}


@pytest.mark.parametrize("name", CASES)
def test_each_layer_type_is_counted_as_the_tf_profiler_counts_it(name: str):
    shape, make, instead = CASES[name]
    ours, theirs = _one(shape, make())
    if instead is not None:
        theirs = instead()
    assert ours > 0 and abs(ours - theirs) <= 0.05 * theirs, (ours, theirs)


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_elementwise_merges_are_counted_as_the_profiler_counts_them(merge):
    x = keras.Input((8, 8, 3))
    layer = merge()
    model = keras.Model(x, layer([x, L.ReLU()(x)]))
    ours = flops.layer_flops(layer, [(None, 8, 8, 3)] * 2, (None, 8, 8, 3))
    theirs = flops.profiler_flops(model) or 192  # the profiler counts no Minimum either: one op per output
    assert ours == theirs


def test_a_nested_model_and_a_separable_stack_are_counted_in_full():
    """A backbone nested as a layer counts its own layers (it used to count 0): a three-layer SeparableConv
    model with a nested backbone is about 2.6 MFLOPs, not the 1.19 the outer layers alone give."""
    inner = keras.Sequential([keras.Input((32, 32, 16)), L.SeparableConv2D(32, 3, padding="same"),
                              L.BatchNormalization(), L.SeparableConv2D(32, 3, padding="same", activation="relu")],
                             name="backbone")
    x = keras.Input((32, 32, 3))
    y = L.SeparableConv2D(16, 3, padding="same")(x)
    y = L.Dense(10, activation="softmax", name="final")(L.GlobalAveragePooling2D()(inner(y)))
    model = keras.Model(x, {"final": y})
    ours = flops.exit_costs(model)["final"]["mflops"] * 1e6
    assert abs(ours - flops.profiler_flops(model)) <= 0.02 * ours and ours > 2.4e6


class Gate(L.Layer):
    """A user's own layer with a weight: one multiply per element."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w


def test_a_weighted_layer_without_a_counter_is_refused_until_one_is_registered():
    x = keras.Input((4, 4, 3))
    gate = Gate(name="my_gate")
    model = keras.Model(x, {"final": L.Dense(2, activation="softmax", name="final")(L.Flatten()(gate(x)))})
    with pytest.raises(flops.FlopsError, match=r"layer 'my_gate' \(a Gate\) has weights but no FLOPs counter"):
        flops.exit_costs(model)
    flops.register(Gate)(lambda layer, ins, out: flops._n(out))
    try:
        assert flops.exit_costs(model)["final"]["mflops"] * 1e6 == 48 + 2 * 48 * 2 + 2
        with pytest.raises(ValueError, match="already registered"):
            flops.register(Gate)(lambda layer, ins, out: 0)
    finally:
        del flops.COUNTERS[Gate]
