"""The paper's early exit (Sec. 4.2) on any single-input Keras classifier, with early-view assist (Sec. 4.3):
`attach_exit` (the API's `trecx.attach_exit`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from ..errors import ModelError
from . import contract
from .graph import POOLINGS, ancestors, check_crossing, classifier, functional, tap_of, through
from .layers import _reg
from .paper_exit import PaperConfig, exit_heads


def attach_exit(model: keras.Model, after: str | list[str], pointwise: int | list[int | None] | None = None,
                kernel: int = 2, strides: int = 2, pool: int | None = None, ev_assist: bool = True, l2: float = 0.0,
                share: bool = False) -> keras.Model:
    """`model` with the paper's early exit after layer `after` (Sec. 4.2: a 1x1 conv to `pointwise` channels,
    default twice the tap's, 0 for none, or a list of these, one per exit; a depthwise `kernel` conv of stride
    `strides` + ReLU; average pooling by `pool`, default down to at most 4x4; a softmax dense; the same in 1-D
    on a Conv1D network's (steps, channels) maps), outputs {"early_exit", "final"} by the project's
    contract; or, with a list of layers in order from the input, one such exit after each, outputs {"exit_1",
    ..., "exit_k", "final"}. `ev_assist` (Sec. 4.3) concatenates an early view of the last feature map per
    exit (that exit's depthwise kernel, copied in while training) before a new final classifier, which starts
    from the old one's weights (exactly the old classifier without EV). `model` (functional or Sequential) is
    left as it was: the exit goes on a copy of it, unless `share` (the backbone's layers then are `model`'s,
    and training the exit trains them)."""
    model, addresses = functional(model, share)
    final_layer = classifier(model)
    several = not isinstance(after, str)
    afters = list(after) if several else [after]
    if several and not afters:
        raise ModelError(f"model '{model.name}': attach_exit needs at least one layer name in `after`")
    taps = [tap_of(model, a, addresses) for a in afters]
    for a, tap in zip(afters, taps, strict=True):
        check_crossing(model, tap, a)
    for a, b, ta, tb in zip(afters, afters[1:], taps, taps[1:], strict=False):
        if id(ta) not in ancestors(tb) or ta is tb:
            raise ModelError(f"model '{model.name}': exit layers must be in order from the input, but '{b}' does not "
                             f"come after '{a}'")
    classes = final_layer.kernel.shape[-1]
    features = final_layer.input
    if len(features.shape) > 2:  # a 1x1 conv classifier reads a 1x1 map
        features = layers.Flatten(name="final_flatten")(features)
    last = None
    if ev_assist:
        pooling, _ = through(final_layer.input)
        if not isinstance(pooling, POOLINGS):
            raise ModelError(f"model '{model.name}': ev_assist needs a global pooling before its classifier (found "
                             f"'{pooling.name}', a {type(pooling).__name__}); pass ev_assist=False")
        last = pooling.input
    widths = list(pointwise) if isinstance(pointwise, (list, tuple)) else [pointwise] * len(afters)
    if len(widths) != len(afters):
        raise ModelError(f"model '{model.name}': {len(afters)} exit layers but {len(widths)} pointwise widths")
    cfgs = []
    rank = len(last.shape) - 2 if last is not None else len(taps[0].shape) - 2
    for after_name, tap, pw in zip(afters, taps, widths, strict=True):
        if len(tap.shape) - 2 != rank:
            raise ModelError(f"layer '{after_name}' of model '{model.name}' gives a {len(tap.shape) - 2}-D map where "
                             f"the network's others are {rank}-D: every exit and the final features share one rank")
        channels = tap.shape[-1]
        width = 2 * channels if pw is None else pw
        side = -(-min(tap.shape[1:-1]) // strides)  # the map's smaller side after the strided conv
        cfgs.append(PaperConfig(pointwise=width, channels=0, kernel=kernel, strides=strides,
                                pool=max(1, side // 4) if pool is None else pool,
                                ev_channels=min(width or channels, last.shape[-1]) if last is not None else 0,
                                ev_strides=1, ev_global_pool=True, rank=rank))
    exits, views = exit_heads(taps, last, classes, cfgs, ev_assist=last is not None, l2=l2, numbered=several)
    if views:
        features = layers.Concatenate(name="ev_concat")([features, *views])
    final = layers.Dense(classes, activation="softmax", kernel_regularizer=_reg(l2), name=contract.FINAL)(features)
    built = contract.model(model.inputs[0], final, early=None if several else exits[0], exits=exits if several else (),
                           name=f"{model.name}_trecx")
    kernel_old, *bias = final_layer.get_weights()
    kernel_old = kernel_old.reshape(-1, classes)
    kernel_new = np.zeros(built.get_layer(contract.FINAL).kernel.shape, dtype=kernel_old.dtype)
    kernel_new[: kernel_old.shape[0]] = kernel_old
    built.get_layer(contract.FINAL).set_weights([kernel_new, bias[0] if bias else np.zeros(classes, "float32")])
    return built
