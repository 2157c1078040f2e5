"""Networks written the way researchers write their own (nothing below `NETWORKS` imports the toolkit), each
taken through the whole public API: attach -> train -> costs (against TF's profiler) -> calibrate (labelled and
label-free) -> export int8 -> the early-exit runtime, whose exits and labels are compared with the Keras
model's at the same threshold. Networks the API cannot take stop with the one-line error naming what to change.

    python examples/own_networks.py               # every network, about half a minute on 2 CPU cores
    python examples/own_networks.py --epochs 2    # a quick look

Writes results/examples/own_networks.json. The data are synthetic (a learnable toy task per input kind), so
the accuracies say only that training ran; the point is that every step runs on every network, or refuses.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

import keras
import numpy as np
from keras import layers as L


def sequential_cnn() -> keras.Model:
    """The most common way to write a tiny CNN."""
    return keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(8, 3, strides=2, padding="same", name="c1"),
                             L.BatchNormalization(), L.ReLU(), L.Conv2D(16, 3, padding="same", name="c2"), L.ReLU(),
                             L.MaxPooling2D(), L.Conv2D(32, 3, padding="same", activation="relu"),
                             L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")], name="sequential_cnn")


def _block(x, filters: int, name: str):
    y = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    y = L.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    shortcut = x if x.shape[-1] == filters else L.Conv2D(filters, 1, name=f"{name}_proj")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([y, shortcut]))


def residual() -> keras.Model:
    """Residual blocks, tapped after a block's add (inside a block is refused: a skip connection crosses it)."""
    x = inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(x)
    x = _block(x, 8, "block1")
    x = L.MaxPooling2D(name="down")(x)
    x = _block(x, 16, "block2")
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="classifier")(x), name="residual")


def nested_backbone() -> keras.Model:
    """A pretrained-style backbone nested as one layer and frozen; the exit taps inside it (`backbone/...`)."""
    b_in = keras.Input((32, 32, 3))
    b = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(b_in)
    b = L.SeparableConv2D(16, 3, padding="same", activation="relu", name="conv2")(b)
    b = L.MaxPooling2D(name="pool")(b)
    b = L.SeparableConv2D(32, 3, padding="same", activation="relu", name="conv3")(b)
    backbone = keras.Model(b_in, b, name="backbone")
    backbone.trainable = False
    x = inputs = keras.Input((32, 32, 3))
    x = backbone(L.Rescaling(1.0, name="scale")(x), training=False)
    x = L.Dropout(0.1)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(x), name="nested_backbone")


def conv1d_kws() -> keras.Model:
    """A keyword-spotting style 1-D network over (frames, features)."""
    x = inputs = keras.Input((49, 10))
    x = L.Conv1D(16, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = L.DepthwiseConv1D(3, padding="same", name="dw1")(x)
    x = L.ReLU(name="dw1_relu")(L.BatchNormalization(name="dw1_bn")(x))
    x = L.Conv1D(32, 1, activation="relu", name="pw1")(x)
    x = L.SeparableConv1D(32, 3, strides=2, padding="same", activation="relu", name="sep2")(x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="fc")(x), name="conv1d_kws")


def clashing_names() -> keras.Model:
    """Layer names the exit's own layers take, and a single output in a list."""
    x = inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="early_exit")(x)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="ev_concat")(x)
    gate = L.Dense(16, activation="sigmoid", name="se")(L.GlobalAveragePooling2D()(x))
    x = L.Multiply(name="excite")([x, L.Reshape((1, 1, 16))(gate)])  # a squeeze-excite gate
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, [L.Dense(3, activation="softmax", name="final")(x)], name="clashing_names")


class Subclassed(keras.Model):
    """Refused: attach_exit needs the graph of layer calls."""

    def __init__(self):
        super().__init__(name="subclassed")
        self.conv, self.pool, self.fc = L.Conv2D(8, 3), L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")

    def call(self, x):
        return self.fc(self.pool(self.conv(x)))


def dynamic_size() -> keras.Model:
    """Refused: a map of no fixed size cannot be pooled to a fixed exit."""
    x = inputs = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(x)), name="dynamic_size")


# name -> (builder, the layer the exit follows, the one-line refusal expected, or "" when it must run)
NETWORKS = {
    "sequential_cnn": (sequential_cnn, "c2", ""),
    "residual": (residual, "block1_out", ""),
    "residual_inside_a_block": (residual, "block1_conv1", "reads 'stem' from before the exit"),
    "nested_backbone": (nested_backbone, "backbone/conv2", ""),
    "conv1d_kws": (conv1d_kws, "dw1_relu", ""),
    "clashing_names": (clashing_names, "early_exit", ""),
    "subclassed": (lambda: Subclassed(), "conv", "is a subclassed keras.Model"),
    "dynamic_size": (dynamic_size, "conv1", "a feature map of fixed size"),
}


def toy_data(shape: tuple, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 3-class task: the class is which third of the input (along its first axis) is brighter."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, *shape)).astype("float32")
    third = shape[0] // 3
    for c in range(3):
        x[y == c, c * third: (c + 1) * third] += 1.5
    return x, y


def chain(name: str, epochs: int = 4, samples: int = 192) -> dict:
    """The whole chain on one network of NETWORKS; the record of what each step gave (or the refusal)."""
    import tensorflow as tf

    from trecx import api
    from trecx.models import flops

    build, after, _ = NETWORKS[name]
    keras.utils.set_random_seed(0)
    net = build()
    rec: dict = {"network": name, "after": after}
    try:
        model = api.attach_exit(net, after)
    except api.ModelError as e:
        return rec | {"refused": str(e)}
    before = [w.copy() for w in net.get_weights()]
    shape = tuple(model.input_shape[1:])
    x, y = toy_data(shape, samples)
    xv, yv = toy_data(shape, samples, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    frozen = {w.path: np.array(w) for la in model.layers if not la.trainable for w in la.weights}
    api.train_exit(model, train, epochs=epochs)
    rec["user_model_unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, net.get_weights(), strict=True))
    rec["frozen_layers"] = len([la for la in model.layers if not la.trainable])
    rec["frozen_weights_unchanged"] = all(np.array_equal(v, np.array(w)) for la in model.layers if not la.trainable
                                          for w in la.weights for v in [frozen[w.path]])
    names = ["early_exit", "final"]
    costs = api.exit_costs(model)
    rec["mflops"] = {n: costs[n]["mflops_alone"] for n in names}
    rec["profiler_mflops"] = {n: flops.profiler_flops(model, n) / 1e6 for n in names}
    early, final = api.outputs(model, xv)
    rec["keras_accuracy"] = {"early_exit": float(np.mean(early.argmax(1) == yv)),
                             "final": float(np.mean(final.argmax(1) == yv))}
    labelled = api.calibrate_exit(model, xv, yv, max_drop=0.05)
    free = api.calibrate_exit(model, xv, max_drop=0.05)
    graphs = api.export_int8(model, x[:64])
    int8 = api.calibrate_exit(graphs, xv, yv, max_drop=0.05)
    rec["certified_rho"] = {"float_labelled": labelled.rho, "float_label_free": free.rho, "int8_labelled": int8.rho}
    rho = float(np.median(early.max(1)))  # half the samples leave early in Keras: both exits are compared
    runtime = api.runtime(graphs, rho)
    keras_exit = np.where(early.max(1) >= rho, "early_exit", "final")
    keras_label = np.where(early.max(1) >= rho, early.argmax(1), final.argmax(1))
    used = np.where((early.max(1) >= rho)[:, None], early, final)
    top2 = np.sort(used, axis=1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] >= 0.1  # int8 rounding may swap near-ties of an untrained exit
    preds = [runtime(row) for row in xv]
    same_label = np.array([p.label == t for p, t in zip(preds, keras_label, strict=True)])
    rec["compared_at_rho"] = rho
    rec["runtime_agrees"] = {"exit": float(np.mean([p.exit == e for p, e in zip(preds, keras_exit, strict=True)])),
                             "label": float(same_label.mean()),
                             "label_where_keras_is_sure": float(same_label[sure].mean()) if sure.any() else 1.0,
                             "sure_samples": int(sure.sum())}
    return rec


@dataclass
class OwnNetworksConfig:
    """Options of this example."""

    epochs: int = 4  # joint training epochs per network (toy data)
    samples: int = 192  # training and validation samples per network
    out: str = "results/examples/own_networks.json"  # relative to the repository


def run(cfg: OwnNetworksConfig) -> list[dict]:
    from trecx import files, paths
    from trecx.config import versions

    start, records = time.time(), []
    for name in NETWORKS:
        records.append(chain(name, cfg.epochs, cfg.samples))
        print(records[-1])
    files.write_json(paths.REPO / cfg.out, {"config": asdict(cfg), "versions": versions(),
                                                   "seconds": time.time() - start, "networks": records})
    return records


if __name__ == "__main__":
    from trecx.config import parse

    run(parse(OwnNetworksConfig, None, sys.argv[1:], description=__doc__))
