"""MLPerf Tiny DS-CNN (conv 64 10x4 stride 2, four depthwise-separable blocks of 64, about 24.9K
parameters) and its early-exit variants. Layer shapes follow the MLPerf Tiny reference
(mlcommons/tiny, benchmark/training/keyword_spotting/keras_model.py). Input: 49x10x1 MFCC."""

from __future__ import annotations

from functools import partial

import keras
from keras import layers

from trecx.models import prior
from trecx.models.layers import EarlyExitBlock, attach_trecx, exit_model
from trecx.models.paper_exit import PaperConfig, attach_paper, attach_paper_exits
from trecx.models.registry import register
from trecx.models.taps import exit_weights, placed

TASK = "keyword_spotting"
W_EE = 0.3  # the paper's early-exit loss weight for DS-CNN
# The paper's published DS-CNN exit after DS block 2 (../shared/papers/README.md): no pointwise conv,
# depthwise 3x3 stride 2 on 32 of the 64 channels, average pooling by 2 (-> 6x1x32 = 192), dense;
# EV: depthwise 3x3 stride 1 on 32 of the final 64 channels, global pooling (-> 32). 28,248 parameters.
PAPER = PaperConfig(pointwise=0, channels=32, kernel=3, strides=2, pool=2, ev_channels=32, ev_strides=1,
                    ev_global_pool=True)
WIDTHS = {"none": 0, "0.5x": 32, "1x": 64, "2x": 128}  # exit-width study: the 1x1 conv's output channels


def study_name(block: int, width: str) -> str:
    """The registered variant of the exit study's cell: `trecx` is the paper's own (block 2, no 1x1 conv)."""
    return "trecx" if (block, width) == (2, "none") else f"trecx_ee{block}_{width}"


def study_config(width: str) -> PaperConfig:
    """The paper's exit with a 1x1 conv of `width` (WIDTHS) in front, reading all 64 channels; "none"
    is the paper's own (no 1x1 conv, 32 channels)."""
    pointwise = WIDTHS[width]
    return PaperConfig(pointwise=pointwise, channels=0 if pointwise else 32, kernel=3, strides=2, pool=2,
                       ev_channels=32, ev_strides=1, ev_global_pool=True)


def backbone(l2: float = 1e-4) -> tuple:
    """(input, [DS blocks 1-3 outputs], DS block 4 output after dropout): the taps where exits can go."""
    inputs, taps, x = _layers(l2)
    return inputs, taps[:3], x


def _layers(l2: float) -> tuple:
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((49, 10, 1), name="mfcc")
    x = layers.Conv2D(64, (10, 4), strides=2, padding="same", kernel_regularizer=reg)(inputs)
    x = layers.Dropout(0.2)(layers.ReLU()(layers.BatchNormalization()(x)))
    taps = []
    for _ in range(4):
        x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same",
                                                                           depthwise_regularizer=reg)(x)))
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(64, 1, padding="same",
                                                                  kernel_regularizer=reg)(x)))
        taps.append(x)
    return inputs, taps, layers.Dropout(0.4)(x)


def dscnn_paper(ee_after: int = 2, ev_assist: bool = True, eefmaps_concat: bool = False,
                cfg: PaperConfig = PAPER, num_classes: int = 12, l2: float = 1e-4) -> keras.Model:
    """DS-CNN with the paper's EE block (or a `study_config` one) after DS block `ee_after`."""
    inputs, taps, x = _layers(l2)
    early, head = attach_paper(taps[ee_after - 1], x, num_classes, cfg, ev_assist=ev_assist, l2=l2,
                               eefmaps_concat=eefmaps_concat)
    return exit_model(inputs, head, num_classes, early, l2=l2, name=f"dscnn_paper_ee{ee_after}")


def dscnn_two_exit(first: tuple[int, str], second: tuple[int, str], ev_assist: bool = True, num_classes: int = 12,
                   l2: float = 1e-4) -> keras.Model:
    """DS-CNN with two of the exit study's exits, `first` and `second` as (DS block, width), each with its EV."""
    inputs, taps, x = _layers(l2)
    exits, head = attach_paper_exits([taps[first[0] - 1], taps[second[0] - 1]], x, num_classes,
                                     [study_config(first[1]), study_config(second[1])], ev_assist=ev_assist, l2=l2)
    return exit_model(inputs, head, num_classes, exits=exits, l2=l2,
                      name=f"dscnn_two_exit_ee{first[0]}_ee{second[0]}")


def dscnn(ee_after: int | None = None, ev_assist: bool = False, eefmaps_concat: bool = False,
          num_classes: int = 12, l2: float = 1e-4) -> keras.Model:
    """`ee_after`: the DS block (1-4) after which this project's earlier EE block (depthwise first, a
    1x1 conv doubling the channels, batch norm) sits, None for the baseline. `eefmaps_concat`:
    concatenate the EE block's pooled features before the final classifier."""
    inputs, taps, x = _layers(l2)
    early = None
    if ee_after is None:
        head = layers.GlobalAveragePooling2D(name="final_pool")(x)
    elif eefmaps_concat:
        tap = taps[ee_after - 1]
        early, ee_feat = EarlyExitBlock(num_classes, 2 * tap.shape[-1], l2=l2, return_features=True,
                                        name="early_exit")(tap)
        head = layers.Concatenate(name="eefmaps_concat")([layers.GlobalAveragePooling2D(name="final_pool")(x),
                                                         ee_feat])
    else:
        early, head = attach_trecx(taps[ee_after - 1], x, num_classes, ev_assist=ev_assist, l2=l2)
    return exit_model(inputs, head, num_classes, early, l2=l2, name=f"dscnn_ee{ee_after or 0}")


_EE = {"early_exit": W_EE, "final": 1.0}
register(TASK, "baseline", dscnn)
register(TASK, "trecx", partial(dscnn_paper, 2, True), _EE, weight_transfer=True)
register(TASK, "trecx_noev", partial(dscnn_paper, 2, False), _EE)
register(TASK, "trecx_notransfer", partial(dscnn_paper, 2, True), _EE, weight_transfer=False)
register(TASK, "eefmaps_concat", partial(dscnn_paper, 2, False, True), _EE)
# this project's earlier layout (the first models this project shipped), kept for comparison
register(TASK, "trecx_dwfirst", partial(dscnn, 2, True), _EE, weight_transfer=True)
# The exit study, position (DS block 1-3) x width (WIDTHS): trecx_ee{block}_{width}; the
# paper's own point (block 2, no 1x1 conv) is `trecx`
for _block in (1, 2, 3):
    for _width in WIDTHS:
        if study_name(_block, _width) != "trecx":
            register(TASK, study_name(_block, _width), partial(dscnn_paper, _block, True, cfg=study_config(_width)),
                     _EE, weight_transfer=True)
# Two exits: the exit study's best cell on validation (block 1, 0.5x: trecx_plus) first, then the best
# later cell of block 3 (no 1x1 conv) or of block 2 (0.5x) (results/keyword_spotting/exit_study.csv)
for _second in ((3, "none"), (2, "0.5x")):
    register(TASK, f"trecx2_ee1_ee{_second[0]}", partial(dscnn_two_exit, (1, "0.5x"), _second),
             {"exit_1": W_EE, "exit_2": W_EE, "final": 1.0}, weight_transfer=True)
for _method in prior.METHODS:  # the prior early-exit methods on the same backbone (Fig 7, Table 2)
    register(TASK, _method, partial(prior.build, _method, backbone, 12, name=f"dscnn_{_method}"),
             prior.loss_weights(_method), post_trained=_method == "pteenet")
# Exits where the placement search put them (results/keyword_spotting/placement.csv: heads on the frozen
# reference, ranked by the Cortex-M4 instruction cut at <= 1 point on validation): the best single exit, after
# the first conv (1x), and the best pair, that one and a second after DS block 1's depthwise conv (no 1x1 conv)
_PLACED = {"trecx_placed": ((0,), ("1x",)), "trecx2_placed": ((0, 1), ("1x", "none"))}
for _name, (_positions, _widths) in _PLACED.items():
    register(TASK, _name, partial(placed, dscnn, _positions, _widths), exit_weights(W_EE), weight_transfer=True)
