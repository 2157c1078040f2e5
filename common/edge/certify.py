"""Thresholds certified on what will run: the float outputs of a Keras model, or the int8 graphs (or their
runtime) that a device runs, each exit's cost on the chosen basis (`edge.costs`). The API's
`trecx.calibrate_exit`; the statistics are `evaluation.calibrate`'s."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from ..evaluation import calibrate, thresholds
from ..evaluation.evaluate import exit_probs as float_probs
from .costs import cost_vector
from .runtime import exit_probs as int8_probs


def calibrate_exit(model, x: np.ndarray, y: np.ndarray | None = None, base_right: np.ndarray | None = None,
                   max_drop: float = 0.01, delta: float = 0.05, per_exit: bool = False,
                   costs: list[float] | None = None, cost: str = "flops",
                   cost_x: np.ndarray | None = None) -> calibrate.Calibration:
    """Thresholds certified on (x, y) to keep the accuracy drop against a baseline (its per-sample correctness
    `base_right`) within `max_drop` with probability >= 1 - delta; without labels (y None), to keep the
    disagreement with the model's own final exit within `max_drop`. `model`: the Keras model (its float
    outputs), or, to certify what will run, the int8 graphs of `export_int8` or their `runtime`. `per_exit`: a
    threshold per early exit (`calibrate.calibrate_per_exit`: half of x orders the candidates, half tests
    them). The cheapest certified threshold is the cheapest in `cost`: "flops", or a device such as
    "cortex-m4/cmsis_nn" (`cost_vector`, `cost_x` its inputs; default x); `costs` gives the cumulative cost per
    exit directly. The result's `outputs` says whose outputs it certified.

    The certificate holds only on data that chose nothing: (x, y) must not have trained the model, picked its
    checkpoint, its variant, its exit placement or any setting (keep them apart from the validation data those
    steps read). It then says: with probability >= 1 - delta over the draw of (x, y), the expected drop on their
    distribution is within `max_drop` (not the drop on any one test set)."""
    if isinstance(model, keras.Model):
        probs, on = float_probs(model, x), calibrate.OUTPUTS_FLOAT
    else:
        probs, on = int8_probs(model, x), calibrate.OUTPUTS_INT8
    cum = costs or cost_vector(model, cost, x if cost_x is None else cost_x)
    calibrate.check(probs, y, cum, base_right, max_drop, delta)  # before any arithmetic on mismatched lengths
    right = None if y is None else probs[-1].argmax(axis=1) == y if base_right is None else base_right
    rule = "label_free" if y is None else "certified_per_exit" if per_exit else "certified"
    cal = thresholds.choose(rule, probs, y, cum, right, max_drop, delta)
    return dataclasses.replace(cal, samples=f"{cal.samples}; {on}", outputs=on)
