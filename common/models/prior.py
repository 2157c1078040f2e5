"""Prior early-exit methods on any backbone: BranchyNet, Shallow-Deep Networks, EENets and PTEENet.

A task hands over its backbone as (inputs, taps, final features): `taps` are the feature maps after
each stage (residual stack, DS block) but the last. Exits are named `exit_1`, `exit_2`, ... in depth
order, `final` last. EENets and PTEENet also give each early exit a sigmoid confidence head
(`confidence_<i>`, thresholded instead of max softmax) and a training-only output `mixture`: the
prediction and cost mixed by the confidences, which their cost-aware loss needs. Every early exit
pools like the task's T-RecX exit (`pool_grid`: global on DS-CNN, a 4x4 grid on ResNet-8), so every
method gets the same exit pooling and the comparison is between methods.

- BranchyNet (Teerapittayanon et al., ICPR 2016), as T-RecX applied it: two exits at 1/3 and 2/3 of
  the depth, each an extra 3x3 conv (+BN, ReLU), pooling and dense; joint loss, equal weights.
- SDN (Kaya et al., ICML 2019), as T-RecX applied it: pooling + dense after every stage; weighted
  joint loss, internal classifier i weighted by the fraction of the network's FLOPs before it
  (SDN's tau_i grow with depth up to 0.9; SDN ramps them over training, we use the final values).
- EENets (Demir & Akbas): pooling + dense exits with a sigmoid confidence branch; loss = cross-entropy
  of the confidence-mixed prediction + lambda x the expected normalised cost of where samples exit,
  plus each exit's own cross-entropy (see `loss_weights`: without it the early exits never learnt).
- PTEENet (Lahiany & Aperstein, 2022): branches of conv blocks with confidence heads attached to a
  FROZEN pretrained backbone (final classifier included); trained with the same cost-aware loss.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers, ops

from . import contract, flops
from .layers import pool_features

LAMBDA = 0.1  # weight of the cost term in the EENets/PTEENet loss (costs are fractions of the full model)

METHODS = ("branchynet", "sdn", "eenets", "pteenet")


def _reg(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def _conv_block(x, name: str, l2: float):
    """3x3 conv keeping the channel count, batch norm, ReLU: BranchyNet's and PTEENet's branch layer."""
    x = layers.Conv2D(x.shape[-1], 3, padding="same", use_bias=False, kernel_regularizer=_reg(l2),
                      name=f"{name}_conv")(x)
    return layers.ReLU(name=f"{name}_relu")(layers.BatchNormalization(name=f"{name}_bn")(x))


@keras.saving.register_keras_serializable(package="trecx")
class ConfidenceMixture(layers.Layer):
    """EENets' training output: with confidences h_1..h_{K-1} (h_K = 1) and exit probabilities p_k,
    a sample leaves at exit k with weight w_k = h_k * prod_{j<k} (1 - h_j). Returns, per sample,
    [sum_k w_k p_k, sum_k w_k cost_k]; `costs` are the exits' cumulative FLOPs over the full model's."""

    def __init__(self, costs: list[float], **kwargs):
        super().__init__(**kwargs)
        self.costs = [float(c) for c in costs]

    def call(self, inputs):
        k = len(self.costs)
        probs, confs = inputs[:k], inputs[k:]
        remain, mix, cost = 1.0, 0.0, 0.0
        for i in range(k):  # over the exits (static, a handful), not over the batch
            w = remain * confs[i] if i < k - 1 else remain
            mix, cost = mix + w * probs[i], cost + w * self.costs[i]
            if i < k - 1:
                remain = remain * (1.0 - confs[i])
        return ops.concatenate([mix, cost], axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], input_shapes[0][-1] + 1)

    def get_config(self) -> dict:
        return super().get_config() | {"costs": self.costs}


@keras.saving.register_keras_serializable(package="trecx")
class MixtureLoss(keras.losses.Loss):
    """Cross-entropy of the mixed prediction plus `lam` x its expected cost (EENets' loss)."""

    def __init__(self, lam: float = LAMBDA, name: str = "mixture_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lam = lam

    def call(self, y_true, y_pred):
        probs, cost = y_pred[:, :-1], y_pred[:, -1]
        ce = keras.losses.sparse_categorical_crossentropy(y_true, ops.clip(probs, 1e-7, 1.0))
        return ce + self.lam * cost

    def get_config(self) -> dict:
        return super().get_config() | {"lam": self.lam}


def _positions(method: str, n_taps: int) -> list[int]:
    """Which taps get an exit: BranchyNet two at 1/3 and 2/3 of the stages, the others every tap."""
    if method == "branchynet":
        stages = n_taps + 1
        return sorted({max(1, round(stages * f)) for f in (1 / 3, 2 / 3)} - {stages})
    return list(range(1, n_taps + 1))


def build(method: str, backbone: Callable[[float], tuple], num_classes: int, l2: float = 1e-4,
          name: str = "model", pool_grid: int = 1) -> keras.Model:
    """Add `method`'s exits to `backbone(l2) -> (inputs, taps, final features)`; the final classifier
    is global average pooling + dense softmax, named `final_pool` and `final` as in the baselines;
    early exits pool with `pool_grid` (see `layers.pool_features`)."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; known: {METHODS}")
    inputs, taps, final_features = backbone(l2)
    exits, confs = [], []
    for i, pos in enumerate(_positions(method, len(taps)), start=1):
        x, exit_ = taps[pos - 1], contract.exit_name(i)
        if method in ("branchynet", "pteenet"):
            x = _conv_block(x, f"{exit_}_branch", l2)
        pooled = pool_features(x, exit_, pool_grid)
        exits.append(layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2), name=exit_)(pooled))
        if method in ("eenets", "pteenet"):
            conf = contract.confidence_name(i)
            confs.append(layers.Dense(1, activation="sigmoid", name=conf)(pooled))
    pooled = layers.GlobalAveragePooling2D(name="final_pool")(final_features)
    final = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2), name=contract.FINAL)(pooled)
    model = contract.model(inputs, final, exits=exits, confidences=confs, name=name)
    if not confs:
        return model
    costs = flops.exit_costs(model)
    rel = [costs[e]["mflops"] / costs[contract.FINAL]["mflops"] for e in contract.exit_names(model)]
    mixture = ConfidenceMixture(rel, name=contract.MIXTURE)([*exits, final, *confs])
    return contract.model(inputs, final, exits=exits, confidences=confs, mixture=mixture, name=name)


def loss_weights(method: str) -> Callable[[keras.Model], dict[str, float]]:
    """The method's loss weights per output, given the built model (SDN's depend on its FLOPs)."""
    def weights(model: keras.Model) -> dict[str, float]:
        exits = contract.exit_names(model)[:-1]
        if method in ("eenets", "pteenet"):
            # the cost-aware mixture loss, plus every exit's own cross-entropy: with the mixture alone,
            # the confidence heads learn to send every sample to the final exit within the first epochs,
            # before the early classifiers learn anything (on KWS: 7% standalone accuracy at every
            # early exit after 60 epochs), so the early exits never become usable
            return {contract.MIXTURE: 1.0} | dict.fromkeys(exits, 1.0) | {contract.FINAL: 1.0}
        if method == "sdn":
            c = flops.exit_costs(model)
            return {e: round(c[e]["mflops_alone"] / c["final"]["mflops_alone"], 2) for e in exits} | {"final": 1.0}
        return dict.fromkeys([*exits, "final"], 1.0)

    return weights
