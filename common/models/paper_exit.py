"""The early exit and early view exactly as the paper's published models build them.

The paper's text gives the EE block in general (a pointwise conv doubling the channels, a strided
depthwise conv, pooling, dense); its published models, checked against Table 1's parameter counts, use
per model (../shared/papers/README.md, "The configuration behind the paper's numbers"):

- ResNet-8: 1x1 conv 16->32 (no batch norm, no activation), depthwise 2x2 stride 2 + ReLU, average
  pooling by 4 (-> 4x4x32 = 512), dense; EV: depthwise 2x2 stride 2 on 32 of the final block's 64
  channels (-> 512, flattened), concatenated with the final global pool.
- DS-CNN: no pointwise conv; depthwise 3x3 stride 2 on 32 of the 64 channels, average pooling by 2
  (-> 192), dense; EV: depthwise 3x3 stride 1 on 32 channels, global pooling (-> 32).
- MobileNetV1-0.25: 1x1 conv 32->64, depthwise 2x2 stride 2, average pooling by 4 (-> 576), dense;
  EV: depthwise 2x2 on 32 of the final channels (-> 288, flattened).

`common.models.layers.EarlyExitBlock` is this project's earlier layout (depthwise conv first, batch
norm after each conv, a learned projection before the EV layer). Both layers here expose `.depthwise`,
so `EVWeightTransfer` copies the EE kernel into the EV layer (its first channels) as for the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from . import contract
from .layers import EV_PREFIX, _reg, _Sequence, ev_name


@keras.saving.register_keras_serializable(package="trecx")
class ChannelSlice(layers.Layer):
    """The first `channels` channels of a feature map."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x):
        return x[..., : self.channels]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.channels)

    def get_config(self) -> dict:
        return super().get_config() | {"channels": self.channels}


def _kinds(rank: int) -> tuple[type, type, type]:
    """The (conv, depthwise conv, average pooling) layers for 1-D (steps, channels) or 2-D feature maps."""
    if rank not in (1, 2):
        raise ValueError(f"an exit block is 1-D or 2-D, got rank {rank}")
    return ((layers.Conv1D, layers.DepthwiseConv1D, layers.AveragePooling1D) if rank == 1 else
            (layers.Conv2D, layers.DepthwiseConv2D, layers.AveragePooling2D))


@dataclass(frozen=True)
class PaperConfig:
    """One published model's EE and EV settings."""

    pointwise: int = 0  # 1x1 conv to this many channels first (0: none)
    channels: int = 0  # the EE reads only the first `channels` input channels (0: all)
    kernel: int = 2  # EE depthwise kernel
    strides: int = 2  # EE depthwise stride
    pool: int = 4  # EE average pooling size (0: none), then flattened
    ev_channels: int = 32  # the EV reads the first `ev_channels` of the final block
    ev_strides: int = 2  # EV depthwise stride (its kernel is the EE's)
    ev_global_pool: bool = False  # EV output: global average pooling, else flattened
    rank: int = 2  # 2: the block for (height, width, channels) maps; 1: for (steps, channels), Conv1D networks


@keras.saving.register_keras_serializable(package="trecx")
class PaperExit(_Sequence):
    """[first `channels` channels] -> [1x1 conv to `pointwise`] -> depthwise conv + ReLU ->
    [average pooling by `pool`] -> flatten -> dense softmax (see the module docstring)."""

    def __init__(self, num_classes: int, pointwise: int = 0, channels: int = 0, kernel_size: int = 2,
                 strides: int = 2, pool: int = 4, l2: float = 0.0, return_features: bool = False, rank: int = 2,
                 **kwargs):
        super().__init__(**kwargs)
        conv, depthwise, average = _kinds(rank)
        self.num_classes, self.pointwise_width, self.channels, self.rank = num_classes, pointwise, channels, rank
        self.kernel_size, self.strides, self.pool_size, self.l2 = kernel_size, strides, pool, l2
        self.return_features = return_features  # also return the flattened features (eefmaps concat)
        self.slice = ChannelSlice(channels, name="slice") if channels else None
        self.pointwise = conv(pointwise, 1, kernel_regularizer=_reg(l2), name="pointwise") if pointwise else None
        self.depthwise = depthwise(kernel_size, strides=strides, padding="same", depthwise_regularizer=_reg(l2),
                                   name="depthwise")
        self.relu = layers.ReLU(name="relu")
        self.pool = average(pool, name="pool") if pool else None
        self.flatten = layers.Flatten(name="flatten")
        self.classifier = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2),
                                       name="classifier")

    def _chain(self) -> list[layers.Layer]:
        head = [self.pointwise] if self.pointwise is not None else []
        pool = [self.pool] if self.pool is not None else []
        first = [self.slice] if self.slice is not None else []
        return [*first, *head, self.depthwise, self.relu, *pool, self.flatten, self.classifier]

    def get_config(self) -> dict:
        return super().get_config() | {"num_classes": self.num_classes, "pointwise": self.pointwise_width,
                                       "channels": self.channels, "kernel_size": self.kernel_size,
                                       "strides": self.strides, "pool": self.pool_size, "l2": self.l2,
                                       "return_features": self.return_features, "rank": self.rank}


@keras.saving.register_keras_serializable(package="trecx")
class PaperEV(_Sequence):
    """Early view: first `channels` channels of the final block -> depthwise conv (the EE's kernel size,
    its weights copied in by EVWeightTransfer) + ReLU -> global average pooling or flatten."""

    def __init__(self, channels: int, kernel_size: int = 2, strides: int = 2, global_pool: bool = False,
                 l2: float = 0.0, rank: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel_size, self.strides, self.global_pool, self.l2, self.rank = (
            channels, kernel_size, strides, global_pool, l2, rank)
        self.slice = ChannelSlice(channels, name="slice") if channels else None
        self.depthwise = _kinds(rank)[1](kernel_size, strides=strides, padding="same", depthwise_regularizer=_reg(l2),
                                         name="depthwise")
        self.relu = layers.ReLU(name="relu")
        pool = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D)[rank - 1]
        self.out = pool(name="pool") if global_pool else layers.Flatten(name="flatten")

    def _chain(self) -> list[layers.Layer]:
        first = [self.slice] if self.slice is not None else []
        return [*first, self.depthwise, self.relu, self.out]

    def get_config(self) -> dict:
        return super().get_config() | {"channels": self.channels, "kernel_size": self.kernel_size,
                                       "strides": self.strides, "global_pool": self.global_pool, "l2": self.l2,
                                       "rank": self.rank}


def exit_heads(taps: list, final_features, num_classes: int, cfgs: list[PaperConfig], ev_assist: bool = True,
               l2: float = 0.0, numbered: bool = True) -> tuple[list, list]:
    """The one place the paper's exits are built (the tasks' builders and `common.api` both come here): an
    EE on each of `taps` with its own config and, when `ev_assist`, its EV on `final_features`, built exit by
    exit. Names: `exit_i` and `ev_assist_i` (`numbered`), else the one exit's `early_exit` and `ev_assist`.
    Returns (the exits' probabilities, the EV outputs to concatenate before the final classifier)."""

    if not numbered and len(taps) != 1:
        raise ValueError(f"{len(taps)} exits need numbered names")
    exits, views = [], []
    for i, (tap, cfg) in enumerate(zip(taps, cfgs, strict=True), start=1):
        exits.append(PaperExit(num_classes, cfg.pointwise, cfg.channels, cfg.kernel, cfg.strides, cfg.pool, l2=l2,
                               rank=cfg.rank, name=contract.exit_name(i) if numbered else contract.EARLY)(tap))
        if ev_assist:
            views.append(PaperEV(cfg.ev_channels, cfg.kernel, cfg.ev_strides, cfg.ev_global_pool, l2=l2,
                                 rank=cfg.rank, name=ev_name(i) if numbered else EV_PREFIX)(final_features))
    return exits, views


def attach_paper(features, final_features, num_classes: int, cfg: PaperConfig, ev_assist: bool = True,
                 l2: float = 0.0, eefmaps_concat: bool = False):
    """The paper's EE on `features` and, optionally, its EV on `final_features`. Returns (early-exit
    probabilities, the tensor for the final classifier: the final global pool, with the EV output
    concatenated when `ev_assist`, or the EE's own flattened features when `eefmaps_concat`: the
    paper's Fig 6 alternative to the EV layer)."""
    if eefmaps_concat:
        early, ee_features = PaperExit(num_classes, cfg.pointwise, cfg.channels, cfg.kernel, cfg.strides, cfg.pool,
                                       l2=l2, return_features=True, name="early_exit")(features)
        pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
        return early, layers.Concatenate(name="eefmaps_concat")([pooled, ee_features])
    (early,), views = exit_heads([features], final_features, num_classes, [cfg], ev_assist, l2, numbered=False)
    pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
    return early, layers.Concatenate(name="ev_concat")([pooled, *views]) if views else pooled


def attach_paper_exits(taps: list, final_features, num_classes: int, cfgs: list[PaperConfig], ev_assist: bool = True,
                       l2: float = 0.0):
    """The paper's EE on each of `taps` with its own config (`exit_1`, `exit_2`, ... in order) and, when
    `ev_assist`, one EV per exit on `final_features` (`ev_assist_i`, taking exit i's depthwise kernel).
    Returns (the exits' probabilities, the tensor for the final classifier)."""
    exits, views = exit_heads(taps, final_features, num_classes, cfgs, ev_assist, l2)
    pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
    return exits, layers.Concatenate(name="ev_concat")([pooled, *views]) if views else pooled
