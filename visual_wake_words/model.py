"""MLPerf Tiny MobileNetV1 (alpha 0.25, 96x96x3, 2 classes) and its early-exit variants. Layer
shapes follow the MLPerf Tiny reference (mlcommons/tiny, benchmark/training/visual_wake_words/
vww_model.py). Input: float32 pixels 0..255, scaled to [0, 1] inside the model."""

from __future__ import annotations

from functools import partial

import keras
from keras import layers

from trecx.models.layers import attach_trecx, exit_model
from trecx.models.paper_exit import PaperConfig, attach_paper
from trecx.models.registry import register
from trecx.models.taps import exit_weights, placed

TASK = "visual_wake_words"
W_EE = 0.4  # the paper's early-exit loss weight for MobileNetV1
# (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks at alpha 0.25
BLOCKS = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
EE_AFTER = 4  # "after the 4th layer": the first conv and three depthwise-separable blocks (32 ch, 24x24)
# The paper's published exit there (../shared/papers/README.md): 1x1 conv 32->64, depthwise 2x2 stride 2,
# average pooling by 4 (-> 3x3x64 = 576), dense; EV: depthwise 2x2 on 32 of the final block's 256
# channels (3x3 -> 288, flattened). 226,116 parameters (Table 1: 226.2K).
PAPER = PaperConfig(pointwise=64, kernel=2, strides=2, pool=4, ev_channels=32, ev_strides=1)
SIDE = {1: 48, 2: 48, 3: 24, 4: 24, 5: 12, 6: 12}  # map side after layer n (the first conv is layer 1)
WIDTHS = {"none": 0, "1x": 1, "2x": 2}  # exit-width study: the 1x1 conv's channels, times the tap's
STUDY_LAYERS = (3, 4, 6)  # exit-position study: after these layers


def study_name(layer: int, width: str) -> str:
    """The registered variant of the exit study's cell: `trecx` is the paper's own (layer 4, 2x)."""
    return "trecx" if (layer, width) == (EE_AFTER, "2x") else f"trecx_ee{layer}_{width}"


def study_config(layer: int, width: str) -> PaperConfig:
    """The paper's exit after `layer` with a 1x1 conv of `width`, pooled to the same 3x3 grid."""
    channels = ([8] + [f for f, _ in BLOCKS])[layer - 1]
    return PaperConfig(pointwise=WIDTHS[width] * channels, kernel=2, strides=2, pool=SIDE[layer] // 6,
                       ev_channels=32, ev_strides=1)


def mobilenet_v1(ee_after: int | None = None, ev_assist: bool = False, num_classes: int = 2,
                 l2: float = 0.0, paper: PaperConfig | None = None, eefmaps_concat: bool = False) -> keras.Model:
    """`ee_after`: the layer after which the exit sits (None: the baseline); `paper`: the paper's exit
    block with these settings, else this project's earlier layout (depthwise first, batch norm)."""
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((96, 96, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, strides=2, padding="same",
                                                              kernel_regularizer=reg)(x)))
    taps = [x]
    for filters, stride in BLOCKS:
        x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                                                           depthwise_regularizer=reg)(x)))
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(filters, 1, padding="same",
                                                                  kernel_regularizer=reg)(x)))
        taps.append(x)
    early = None
    if ee_after is None:
        head = layers.GlobalAveragePooling2D(name="final_pool")(x)
    elif paper is not None:
        early, head = attach_paper(taps[ee_after - 1], x, num_classes, paper, ev_assist=ev_assist, l2=l2,
                                   eefmaps_concat=eefmaps_concat)
    else:
        early, head = attach_trecx(taps[ee_after - 1], x, num_classes, ev_assist=ev_assist, l2=l2)
    return exit_model(inputs, head, num_classes, early, l2=l2, name=f"mobilenet_v1_ee{ee_after or 0}")


_EE = {"early_exit": W_EE, "final": 1.0}
register(TASK, "baseline", mobilenet_v1)
register(TASK, "trecx", partial(mobilenet_v1, EE_AFTER, True, paper=PAPER), _EE, weight_transfer=True)
register(TASK, "trecx_noev", partial(mobilenet_v1, EE_AFTER, False, paper=PAPER), _EE)
register(TASK, "trecx_notransfer", partial(mobilenet_v1, EE_AFTER, True, paper=PAPER), _EE, weight_transfer=False)
register(TASK, "eefmaps_concat", partial(mobilenet_v1, EE_AFTER, False, paper=PAPER, eefmaps_concat=True), _EE)
# this project's earlier layout (the first models this project shipped), kept for comparison
register(TASK, "trecx_dwfirst", partial(mobilenet_v1, EE_AFTER, True), _EE, weight_transfer=True)
# The exit study on VWW, position (layer 3, 4, 6) x width: trecx_ee{layer}_{width}; the paper's
# own point (layer 4, 2x) is `trecx`
for _layer in STUDY_LAYERS:
    for _width in WIDTHS:
        if study_name(_layer, _width) != "trecx":
            register(TASK, study_name(_layer, _width),
                     partial(mobilenet_v1, _layer, True, paper=study_config(_layer, _width)), _EE,
                     weight_transfer=True)
# Exits where the placement search put them (results/visual_wake_words/placement.csv: heads on the frozen
# reference, ranked by the Cortex-M4 instruction cut at <= 1 point on validation): the best single exit, after
# block 7's depthwise conv, and the best pair, after block 5 and after block 8's depthwise conv (no 1x1 conv)
_PLACED = {"trecx_placed": ((13,), ("none",)), "trecx2_placed": ((10, 15), ("none", "none"))}
for _name, (_positions, _widths) in _PLACED.items():
    register(TASK, _name, partial(placed, mobilenet_v1, _positions, _widths), exit_weights(W_EE), weight_transfer=True)
