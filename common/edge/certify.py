"""Thresholds certified on what will run: the float outputs of a Keras model, or the int8 graphs (or their
runtime) that a device runs, each exit's cost on the chosen basis (`edge.costs`). The API's
`trecx.calibrate_exit`; the statistics are `evaluation.calibrate`'s."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from ..evaluation import calibrate, signals, thresholds
from ..evaluation.evaluate import exit_probs as float_probs
from .costs import cost_vector
from .runtime import exit_probs as int8_probs
from .runtime import exit_quantization


def _outputs(model, x: np.ndarray) -> tuple[list[np.ndarray], str, list[tuple[float, int]] | None]:
    """Every exit's probabilities on x, whose outputs they are, and each early exit's int8 (scale, zero) (None
    for a Keras model)."""
    if isinstance(model, keras.Model):
        return float_probs(model, x), calibrate.OUTPUTS_FLOAT, None
    return int8_probs(model, x), calibrate.OUTPUTS_INT8, exit_quantization(model)


def fit_signal(model, x: np.ndarray, y: np.ndarray | None = None, signal: str = "gate") -> signals.Signal:
    """The exit signal `signal` (`evaluation.signals`) fitted on (x, y): the validation data, which must neither
    train the model nor certify its thresholds. `model`: the Keras model or the int8 graphs (their runtime) that
    will run. The gate needs no labels; the temperature does."""
    probs, on, _ = _outputs(model, x)
    return signals.fit(signal, probs, y, f"the data given to fit_signal ({on})")


def calibrate_exit(model, x: np.ndarray, y: np.ndarray | None = None, base_right: np.ndarray | None = None,
                   max_drop: float = 0.01, delta: float = 0.05, per_exit: bool = False,
                   costs: list[float] | None = None, cost: str = "flops",
                   cost_x: np.ndarray | None = None, signal: signals.Signal | str = "max_softmax"
                   ) -> calibrate.Calibration:
    """Thresholds certified on (x, y) to keep the accuracy drop against a baseline (its per-sample correctness
    `base_right`) within `max_drop` with probability >= 1 - delta; without labels (y None), to keep the
    disagreement with the model's own final exit within `max_drop`. `model`: the Keras model (its float
    outputs), or, to certify what will run, the int8 graphs of `export_int8` or their `runtime`. `per_exit`: a
    threshold per early exit (`calibrate.calibrate_per_exit`: half of x orders the candidates, half tests
    them). The cheapest certified threshold is the cheapest in `cost`: "flops", or a device such as
    "cortex-m4/cmsis_nn" (`cost_vector`, `cost_x` its inputs; default x); `costs` gives the cumulative cost per
    exit directly. The result's `outputs` says whose outputs it certified. `signal`: the score thresholded, a name
    of `evaluation.signals.SIGNALS` or the Signal `fit_signal` fitted (temperature and gate need fitting); the
    runtime and `export_sources` then run the same signal.

    The certificate holds only on data that chose nothing: (x, y) must not have trained the model, picked its
    checkpoint, its variant, its exit placement or any setting (keep them apart from the validation data those
    steps read). It then says: with probability >= 1 - delta over the draw of (x, y), the expected drop on their
    distribution is within `max_drop` (not the drop on any one test set)."""
    signal = signals.other(signals.named(signal))
    probs, on, quant = _outputs(model, x)
    cum = costs or cost_vector(model, cost, x if cost_x is None else cost_x)
    calibrate.check(probs, y, cum, base_right, max_drop, delta)  # before any arithmetic on mismatched lengths
    right = None if y is None else probs[-1].argmax(axis=1) == y if base_right is None else base_right
    rule = "label_free" if y is None else "certified_per_exit" if per_exit else "certified"
    cal = thresholds.choose(rule, probs, y, cum, right, max_drop, delta,
                            confidences=None if signal is None else signal.scores(probs, quant))
    return dataclasses.replace(cal, samples=f"{cal.samples}; {on}", outputs=on, signal=signal)
