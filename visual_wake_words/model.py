"""MLPerf Tiny MobileNetV1 (alpha 0.25, 96x96x3, 2 classes) and its early-exit variants. Layer
shapes follow the MLPerf Tiny reference (mlcommons/tiny, benchmark/training/visual_wake_words/
vww_model.py). Input: float32 pixels 0..255, scaled to [0, 1] inside the model."""

from __future__ import annotations

from functools import partial

import keras
from keras import layers

from common.models.layers import attach_trecx, exit_model
from common.models.registry import register

TASK = "visual_wake_words"
W_EE = 0.4  # the paper's early-exit loss weight for MobileNetV1
# (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks at alpha 0.25
BLOCKS = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
EE_AFTER = 4  # "after the 4th layer": the first conv and three depthwise-separable blocks (32 ch, 24x24)


def mobilenet_v1(ee_after: int | None = None, ev_assist: bool = False, num_classes: int = 2,
                 l2: float = 0.0) -> keras.Model:
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
    else:
        early, head = attach_trecx(taps[ee_after - 1], x, num_classes, ev_assist=ev_assist, l2=l2)
    return exit_model(inputs, head, num_classes, early, l2=l2, name=f"mobilenet_v1_ee{ee_after or 0}")


_EE = {"early_exit": W_EE, "final": 1.0}
register(TASK, "baseline", mobilenet_v1)
register(TASK, "trecx", partial(mobilenet_v1, EE_AFTER, True), _EE, weight_transfer=True)
register(TASK, "trecx_noev", partial(mobilenet_v1, EE_AFTER, False), _EE)
