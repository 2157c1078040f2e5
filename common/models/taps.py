"""Where an exit can go on a user's network, and the placed models: the candidate taps the placement search
(`studies.placement`) scores, in a fixed order (the same for every build of one architecture, so a position
names a layer whatever Keras called it), and the baseline with exits at chosen positions, for joint training.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from ..errors import ModelError
from . import contract, flops
from .attach import attach_exit
from .graph import check_crossing, functional, tap_of

CONVS = (layers.Conv1D, layers.Conv2D, layers.DepthwiseConv1D, layers.DepthwiseConv2D, layers.SeparableConv1D,
         layers.SeparableConv2D)
WIDTHS = {"none": 0.0, "0.5x": 0.5, "1x": 1.0, "2x": 2.0}  # the head's 1x1 conv, in channels of its tap


def _consumers(model: keras.Model) -> dict[int, list[layers.Layer]]:
    """For each tensor (by id), the layers of `model` that read it."""
    out: dict[int, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for t in node.input_tensors:
                out.setdefault(id(t), []).append(layer)
    return out


def candidate_taps(model: keras.Model, min_tail: float = 0.1) -> list[str]:
    """Layers (the user's addresses) after which an exit can go, in order from the input: a fixed-size feature
    map on the path to the output that a convolution reads (the end of a block: after its activation, pooling
    or merge), with no skip connection across the cut and at least `min_tail` of the FLOPs after it."""
    copy, addresses = functional(model, share=False)
    user = {v: k for k, v in addresses.items()}
    reads = _consumers(copy)
    total = flops.path_mflops(copy, [copy.layers[-1].name])
    out = []
    for layer in copy.layers[1:]:
        t = layer.output
        if not hasattr(t, "shape") or len(t.shape) not in (3, 4) or None in t.shape[1:]:
            continue
        if not any(isinstance(c, CONVS) for c in reads.get(id(t), [])):
            continue
        if not any(x.weights for x in flops.path_layers(copy, [layer.name])):  # input scaling: no layer yet
            continue
        try:
            tap_of(copy, layer.name, {})
            check_crossing(copy, t, layer.name)
        except ModelError:
            continue
        if 1 - flops.path_mflops(copy, [layer.name]) / total >= min_tail:
            out.append(user.get(layer.name, layer.name))
    if not out:
        raise ModelError(f"model '{model.name}' has no layer an exit can follow (a fixed-size feature map read by a "
                         "convolution, no skip connection across it, some of the network after it)")
    return out


def check_widths(widths) -> None:
    """A one-line ModelError naming a head width that is not one of WIDTHS."""
    for w in widths:
        if w not in WIDTHS:
            raise ModelError(f"width '{w}' is not one of {', '.join(WIDTHS)}")


def pointwise(model: keras.Model, taps: list[str], widths: list[str]) -> list[int]:
    """The 1x1 conv channels of heads of `widths` (WIDTHS) after `taps`: a multiple of each tap's channels."""
    check_widths(widths)
    copy, addresses = functional(model, share=False)
    return [round(WIDTHS[w] * int(tap_of(copy, t, addresses).shape[-1])) for t, w in zip(taps, widths, strict=True)]


def placed(builder: Callable[[], keras.Model], positions: tuple[int, ...], widths: tuple[str, ...], kernel: int = 2,
           ev_assist: bool = True) -> keras.Model:
    """`builder()`'s baseline with the paper's exit (EV assist included) after its candidate taps number
    `positions` (`candidate_taps` order), of `widths`: a placement search's winner, to train jointly."""
    base = builder()
    taps = candidate_taps(base)
    if max(positions) >= len(taps):
        raise ModelError(f"model '{base.name}' has {len(taps)} candidate taps; position {max(positions)} is past them")
    after = [taps[p] for p in positions]
    built = attach_exit(base, after if len(after) > 1 else after[0], pointwise=pointwise(base, after, list(widths)),
                        kernel=kernel, ev_assist=ev_assist)
    return built


def exit_weights(w_ee: float) -> Callable[[keras.Model], dict[str, float]]:
    """Loss weights of a placed model: `w_ee` for every early exit, 1 for the final one."""
    return lambda model: {n: w_ee for n in contract.exit_names(model)[:-1]} | {contract.FINAL: 1.0}
