"""The T-RecX layers: the early-exit (EE) block and the early-view (EV) assist layer.

Both are registered Keras-serializable with a complete `get_config`, so a `.keras` file holding
them loads with `keras.models.load_model` after `import common`.
"""

from __future__ import annotations

import keras
from keras import layers

from . import contract


def _reg(l2: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(l2) if l2 else None


class _Sequence(layers.Layer):
    """A layer made of a fixed chain of sublayers; `trace` gives each one's shapes (for FLOPs)."""

    def _chain(self) -> list[layers.Layer]:
        raise NotImplementedError

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for sub in self._chain():
            sub.build(shape)
            shape = sub.compute_output_shape(shape)

    def trace(self, input_shape: tuple) -> list[tuple[layers.Layer, tuple, tuple]]:
        """[(sublayer, input shape, output shape), ...] in call order."""
        out, shape = [], tuple(input_shape)
        for sub in self._chain():
            nxt = sub.compute_output_shape(shape)
            out.append((sub, shape, nxt))
            shape = nxt
        return out

    return_features = False  # exit blocks that set it also return the features their classifier reads

    def compute_output_shape(self, input_shape: tuple):
        steps = self.trace(input_shape)
        return (steps[-1][2], steps[-2][2]) if self.return_features else steps[-1][2]

    def _run(self, x, training=None) -> list:
        """Every sublayer's output, in order."""
        outs = []
        for sub in self._chain():
            x = sub(x, training=training) if isinstance(sub, layers.BatchNormalization) else sub(x)
            outs.append(x)
        return outs

    def call(self, x, training=None):
        steps = self._run(x, training)
        return (steps[-1], steps[-2]) if self.return_features else steps[-1]


@keras.saving.register_keras_serializable(package="trecx")
class EarlyExitBlock(_Sequence):
    """T-RecX EE block: strided depthwise conv, 1x1 conv to `width` channels (twice the input's in
    T-RecX), global average pooling, dense softmax; each conv is followed by batch norm and ReLU.

    The depthwise conv runs first so that the channel-doubling 1x1 conv works at a quarter of the
    resolution: with the 1x1 conv first, the DS-CNN exit after block 2 costs 95% of the whole
    baseline's FLOPs (common/models/flops.py), which leaves early exit nothing to save."""

    def __init__(self, num_classes: int, width: int, kernel_size: int = 3, strides: int = 2,
                 l2: float = 0.0, return_features: bool = False, pool_grid: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.width, self.kernel_size, self.strides, self.l2 = (
            num_classes, width, kernel_size, strides, l2)
        self.return_features = return_features  # also return the pooled features (eefmaps concat)
        # 1: global average pooling; g > 1: average pooling to a g x g grid, flattened, which keeps
        # where things are (on ResNet-8's 16x16 maps a 4x4 grid lifts the frozen-feature EE accuracy
        # from 49% to 66% after 6 epochs, at a cost of 5K parameters)
        self.pool_grid = pool_grid
        self.flatten = layers.Flatten(name="flatten")
        self.pointwise = layers.Conv2D(width, 1, use_bias=False, kernel_regularizer=_reg(l2), name="pointwise")
        self.pointwise_bn = layers.BatchNormalization(name="pointwise_bn")
        self.pointwise_relu = layers.ReLU(name="pointwise_relu")
        self.depthwise = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False,
                                                depthwise_regularizer=_reg(l2), name="depthwise")
        self.depthwise_bn = layers.BatchNormalization(name="depthwise_bn")
        self.depthwise_relu = layers.ReLU(name="depthwise_relu")
        self.pool = layers.GlobalAveragePooling2D(name="pool") if pool_grid == 1 else None  # sized in build
        self.classifier = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2),
                                       name="classifier")

    def _size_pool(self, input_shape: tuple) -> None:
        if self.pool is None:
            h, w = (-(-int(d) // self.strides) for d in input_shape[1:3])  # after the strided depthwise conv
            self.pool = average_pool(h, w, self.pool_grid, "pool")

    def build(self, input_shape: tuple) -> None:
        self._size_pool(input_shape)
        super().build(input_shape)

    def trace(self, input_shape: tuple) -> list[tuple[layers.Layer, tuple, tuple]]:
        self._size_pool(input_shape)
        return super().trace(input_shape)

    def _chain(self) -> list[layers.Layer]:
        grid = [self.flatten] if self.pool_grid > 1 else []
        return [self.depthwise, self.depthwise_bn, self.depthwise_relu, self.pointwise, self.pointwise_bn,
                self.pointwise_relu, self.pool, *grid, self.classifier]

    def get_config(self) -> dict:
        return super().get_config() | {"num_classes": self.num_classes, "width": self.width,
                                       "kernel_size": self.kernel_size, "strides": self.strides, "l2": self.l2,
                                       "return_features": self.return_features, "pool_grid": self.pool_grid}


@keras.saving.register_keras_serializable(package="trecx")
class EVAssist(_Sequence):
    """Early-view assist: a depthwise conv over the final block's features whose kernel is copied
    from the EE block's depthwise conv during most of training (see `EVWeightTransfer`).

    It is `width` channels wide: half the EE block's, i.e. as wide as the EE depthwise conv, whose
    kernel it takes whole. When the final features have another channel
    count, a 1x1 conv first projects them to `width`. The output is pooled to (batch, width), ready
    to be concatenated before the final classifier.
    """

    def __init__(self, width: int, kernel_size: int = 3, project: bool = False, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.width, self.kernel_size, self.project, self.l2 = width, kernel_size, project, l2
        self.projection = layers.Conv2D(width, 1, use_bias=False, kernel_regularizer=_reg(l2), name="projection")
        self.projection_bn = layers.BatchNormalization(name="projection_bn")
        self.projection_relu = layers.ReLU(name="projection_relu")
        self.depthwise = layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False,
                                                depthwise_regularizer=_reg(l2), name="depthwise")
        self.depthwise_bn = layers.BatchNormalization(name="depthwise_bn")
        self.depthwise_relu = layers.ReLU(name="depthwise_relu")
        self.pool = layers.GlobalAveragePooling2D(name="pool")

    def _chain(self) -> list[layers.Layer]:
        head = [self.projection, self.projection_bn, self.projection_relu] if self.project else []
        return [*head, self.depthwise, self.depthwise_bn, self.depthwise_relu, self.pool]

    def get_config(self) -> dict:
        return super().get_config() | {"width": self.width, "kernel_size": self.kernel_size,
                                       "project": self.project, "l2": self.l2}


def attach_trecx(features, final_features, num_classes: int, ev_assist: bool = True, l2: float = 0.0,
                 ee_name: str = "early_exit", ev_name: str = "ev_assist", pool_grid: int = 1):
    """Add the EE block on `features` and, optionally, the EV layer on `final_features`.

    Returns (early-exit probabilities, the tensor to feed the final classifier): the pooled final
    features, concatenated with the EV output when `ev_assist` is on.
    """
    ee_width = 2 * features.shape[-1]
    early = EarlyExitBlock(num_classes, ee_width, l2=l2, pool_grid=pool_grid, name=ee_name)(features)
    pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
    if not ev_assist:
        return early, pooled
    ev_width = ee_width // 2
    ev = EVAssist(ev_width, project=final_features.shape[-1] != ev_width, l2=l2, name=ev_name)(final_features)
    return early, layers.Concatenate(name="ev_concat")([pooled, ev])


def attach_trecx_exits(taps: list, final_features, num_classes: int, ev_assist: bool = True, l2: float = 0.0,
                       pool_grid: int = 1):
    """`attach_trecx` with an exit on each of `taps` (`exit_1`, `exit_2`, ... in order), each with its own EV
    layer (`ev_assist_i`, taking exit i's depthwise kernel). Returns (the exits' probabilities, the tensor
    for the final classifier: the pooled final features, with every EV output concatenated)."""
    exits, views = [], []
    for i, tap in enumerate(taps, start=1):
        width = 2 * tap.shape[-1]
        exits.append(EarlyExitBlock(num_classes, width, l2=l2, pool_grid=pool_grid, name=contract.exit_name(i))(tap))
        if ev_assist:
            views.append(EVAssist(width // 2, project=final_features.shape[-1] != width // 2, l2=l2,
                                  name=ev_name(i))(final_features))
    pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
    return exits, layers.Concatenate(name="ev_concat")([pooled, *views]) if views else pooled


def exit_model(inputs, final_in, num_classes: int, early=None, l2: float = 0.0, name: str = "model",
               exits=()) -> keras.Model:
    """Close a model with its softmax `final` classifier on `final_in` and, when given, the `early_exit`
    output or the numbered early exits `exits` (named and checked by `contract.model`)."""
    final = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2), name=contract.FINAL)(final_in)
    return contract.model(inputs, final, early=early, exits=exits, name=name)


EV_PREFIX = "ev_assist"


def ev_name(i: int) -> str:
    """The EV layer that takes exit i's depthwise kernel in a several-exit T-RecX (`exit_i`)."""
    return f"{EV_PREFIX}_{i}"


def ev_pairs(model: keras.Model) -> list[tuple[str, str]]:
    """(exit layer, EV layer) pairs whose depthwise kernels `EVWeightTransfer` copies: `early_exit` ->
    `ev_assist` for one exit, `exit_i` -> `ev_assist_i` for several."""
    names = {layer.name for layer in model.layers}
    pairs = [(contract.EARLY, EV_PREFIX)] if {contract.EARLY, EV_PREFIX} <= names else []
    return pairs + [(contract.exit_name(i), n) for n in sorted(names) if n.startswith(EV_PREFIX + "_")
                    for i in [int(n.rsplit("_", 1)[1])] if contract.exit_name(i) in names]


def average_pool(h: int, w: int, pool_grid: int, name: str) -> layers.Layer:
    """Global average pooling (`pool_grid` 1), or average pooling of an h x w map to a grid x grid one."""
    if pool_grid == 1:
        return layers.GlobalAveragePooling2D(name=name)
    return layers.AveragePooling2D((max(h // pool_grid, 1), max(w // pool_grid, 1)), name=name)


def pool_features(features, name: str, pool_grid: int = 1):
    """`average_pool` on a feature map, flattened when it pools to a grid."""
    pooled = average_pool(features.shape[1], features.shape[2], pool_grid, f"{name}_pool")(features)
    return pooled if pool_grid == 1 else layers.Flatten(name=f"{name}_flatten")(pooled)


def pool_exit(features, num_classes: int, l2: float = 0.0, name: str = "early_exit", pool_grid: int = 1):
    """The plain exit of the paper's Fig 5 ("baseline EE"): `pool_features` + dense softmax."""
    pooled = pool_features(features, name, pool_grid)
    return layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2), name=name)(pooled)
