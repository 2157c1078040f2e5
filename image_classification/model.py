"""MLPerf Tiny ResNet-8 (16/32/64 filters, three residual stacks, 78,666 parameters) and its
early-exit variants. Layer shapes follow the MLPerf Tiny reference (mlcommons/tiny,
benchmark/training/image_classification/keras_model.py). Input: float32 pixels 0..255, unscaled,
as the reference model takes them (its first conv is followed by batch norm)."""

from __future__ import annotations

from functools import partial

import keras
from keras import layers

from trecx.models import prior
from trecx.models.layers import attach_trecx, attach_trecx_exits, exit_model, pool_exit
from trecx.models.paper_exit import PaperConfig, attach_paper
from trecx.models.registry import register

TASK = "image_classification"
W_EE = 0.5  # the paper's early-exit loss weight for ResNet-8
POOL_GRID = 4  # the exit pools its 16x16 (T-RecX) or 32x32 (pool_ee) map to 4x4, not to 1x1 (see EarlyExitBlock)
# The paper's published ResNet-8 exit (../shared/papers/README.md): 1x1 conv 16->32, depthwise 2x2 stride 2,
# average pooling by 4 (-> 4x4x32); EV: depthwise 2x2 stride 2 on 32 of the final 64 channels (-> 512).
PAPER = PaperConfig(pointwise=32, kernel=2, strides=2, pool=4, ev_channels=32, ev_strides=2)


def _conv(x, filters: int, kernel: int, strides: int, l2: float):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal",
                         kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(x)


def _stack(x, filters: int, strides: int, l2: float):
    y = layers.ReLU()(layers.BatchNormalization()(_conv(x, filters, 3, strides, l2)))
    y = layers.BatchNormalization()(_conv(y, filters, 3, 1, l2))
    shortcut = x if strides == 1 else _conv(x, filters, 1, strides, l2)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def backbone(l2: float = 1e-4) -> tuple:
    """(input, [stack 1, stack 2 outputs], stack 3 output): the taps where exits can go."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.ReLU()(layers.BatchNormalization()(_conv(inputs, 16, 3, 1, l2)))
    stack1 = _stack(x, 16, 1, l2)
    stack2 = _stack(stack1, 32, 2, l2)
    return inputs, [stack1, stack2], _stack(stack2, 64, 2, l2)


def resnet8(exit_kind: str | None = None, ev_assist: bool = False, num_classes: int = 10,
            l2: float = 1e-4) -> keras.Model:
    """`exit_kind`, after stack 1: None (baseline), "paper" (the paper's published EE block), "dwfirst"
    (this project's earlier layout: depthwise first, batch norm, a 4x4 grid) or "pool" (pooling + dense)."""
    if exit_kind not in (None, "paper", "dwfirst", "pool"):
        raise ValueError(f"exit_kind must be None, 'paper', 'dwfirst' or 'pool', got {exit_kind!r}")
    inputs, (stack1, _), x = backbone(l2)
    if exit_kind == "paper":
        early, head = attach_paper(stack1, x, num_classes, PAPER, ev_assist=ev_assist, l2=l2)
    elif exit_kind == "dwfirst":
        early, head = attach_trecx(stack1, x, num_classes, ev_assist=ev_assist, l2=l2, pool_grid=POOL_GRID)
    else:
        early = pool_exit(stack1, num_classes, l2, pool_grid=POOL_GRID) if exit_kind == "pool" else None
        head = layers.GlobalAveragePooling2D(name="final_pool")(x)
    return exit_model(inputs, head, num_classes, early, l2=l2, name=f"resnet8_{exit_kind or 'baseline'}")


def resnet8_two_exit(ev_assist: bool = True, num_classes: int = 10, l2: float = 1e-4) -> keras.Model:
    """Two exits of the layout `trecx_plus` ships (`dwfirst`, a 4x4 grid): `exit_1` after stack 1 and
    `exit_2` after stack 2, each with its EV layer before the final classifier."""
    inputs, taps, x = backbone(l2)
    exits, head = attach_trecx_exits(taps, x, num_classes, ev_assist=ev_assist, l2=l2, pool_grid=POOL_GRID)
    return exit_model(inputs, head, num_classes, exits=exits, l2=l2, name="resnet8_two_exit")


_EE = {"early_exit": W_EE, "final": 1.0}
register(TASK, "baseline", resnet8)
register(TASK, "trecx", partial(resnet8, "paper", True), _EE, weight_transfer=True)
register(TASK, "trecx_noev", partial(resnet8, "paper", False), _EE)
# the earlier layout, kept to compare with the paper's on validation
register(TASK, "trecx_dwfirst", partial(resnet8, "dwfirst", True), _EE, weight_transfer=True)
# two exits (after stacks 1 and 2, the only taps before the last stack), each loss weighted as the one exit
register(TASK, "trecx2_ee1_ee2", resnet8_two_exit, {"exit_1": W_EE, "exit_2": W_EE, "final": 1.0},
         weight_transfer=True)
register(TASK, "pool_ee", partial(resnet8, "pool", False), _EE)
for _method in prior.METHODS:  # the prior early-exit methods on the same backbone (Fig 7, Table 2)
    build = partial(prior.build, _method, backbone, 10, name=f"resnet8_{_method}", pool_grid=POOL_GRID)
    register(TASK, _method, build, prior.loss_weights(_method), post_trained=_method == "pteenet")
