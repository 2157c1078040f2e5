"""TFLite export: float or full-integer int8 graphs, and T-RecX models split at their exits.

The head graph maps the input to the first exit's probabilities plus the feature map the rest of the network
needs; each later segment maps the previous one's map to its exit and its own map; the tail maps its map to the
final probabilities (EV assist included). Outputs are read by name through the signature runner, as TFLite
may reorder them.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from ..console import quiet
from ..errors import TrecxError
from ..evaluation.evaluate import predict
from ..models import contract


def segment_names(k: int) -> list[str]:
    """Names of a k-exit model's k + 1 segments: head (to the first exit), mid_1 .. mid_{k-1}, tail (to the final
    exit); a model with no early exit is one segment, the baseline."""
    return ["baseline"] if k == 0 else ["head", *(f"mid_{i}" for i in range(1, k)), "tail"]


def split_at_exits(model: keras.Model) -> list[keras.Model]:
    """A k-exit model cut into k + 1 segments: segment i maps the previous segment's feature map (the input,
    for the first) to {exit i, "features": the map exit i reads}; the last maps its map to {"final"}. The
    backbone must reach each later layer only through these maps (true of chains and of residual stacks
    tapped after their add)."""

    names = contract.exit_names(model)
    taps = [model.get_layer(n).input for n in names[:-1]]
    segments, src = [], model.inputs
    for i, (name, tap) in enumerate(zip(names[:-1], taps, strict=True)):
        segments.append(keras.Model(src, {name: model.output[name], "features": tap}, name=f"segment_{i}"))
        src = tap
    segments.append(keras.Model(src, {contract.FINAL: model.output[contract.FINAL]}, name=f"segment_{len(taps)}"))
    return segments


POOLINGS = ("mean", "average_pool")  # how global average pooling is lowered (pooling_as_average_pool)


def export_segments(model: keras.Model, calibration_x: np.ndarray | None = None, pooling: str = "mean"
                    ) -> list[bytes]:
    """TFLite graphs of the model split at its exits (`split_at_exits`; a model without exits: one graph): float,
    or full-integer int8 with `calibration_x` (training inputs), each segment calibrated on what it reads from
    them (the previous segment's feature maps). `pooling`: global average pooling as MEAN, or "average_pool"
    (AVERAGE_POOL_2D, which CMSIS-NN runs far faster; `to_tflite`). The one export path of the API and `deploy`."""

    graphs, x = [], calibration_x
    for segment in split_at_exits(model):
        graphs.append(to_tflite(segment, x, len(x), pooling) if x is not None else to_tflite(segment, pooling=pooling))
        if x is not None and "features" in segment.output:
            x = predict(segment, x)["features"]
    return graphs


def to_tflite(model: keras.Model, representative: np.ndarray | None = None, samples: int = 200,
              pooling: str = "mean") -> bytes:
    """Convert `model` (dict outputs) to TFLite: float32, or full-integer int8 (int8 input and
    outputs) calibrated on up to `samples` rows of `representative` (take them from training data)."""

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got '{pooling}'")
    lowering = pooling_as_average_pool() if pooling == "average_pool" else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp, lowering:  # via a SavedModel, so variables are frozen
        export = keras.export.ExportArchive()
        export.track(model)
        export.add_endpoint("serve", lambda x: model(x, training=False),
                            [tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="input")])
        export.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serve"])
        if representative is not None:
            _int8(converter, representative[:samples].astype(np.float32))
        with quiet():  # the converter prints its quantization settings from C++
            return converter.convert()


@contextlib.contextmanager
def pooling_as_average_pool() -> Iterator[None]:
    """While converting: global average pooling traced as an AVERAGE_POOL_2D over the whole map (and a RESHAPE)
    instead of the MEAN it lowers to. The same average, and TFLite Micro has a CMSIS-NN kernel for the first only
    (on the Cortex-M4 the DS-CNN's MEAN ran 1.04 M instructions against 0.05 M as AVERAGE_POOL_2D, which is how
    MLPerf Tiny's own int8 files are converted); but int8 AVERAGE_POOL_2D keeps its input's scale, which cost
    IC's two-exit model 0.8 points of int8 accuracy (docs/deployment.md, "Counts a release firmware gives")."""
    cls = keras.layers.GlobalAveragePooling2D
    original = cls.call

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        if self.data_format != "channels_last" or h is None or w is None:
            return original(self, inputs)
        y = keras.ops.average_pool(inputs, (h, w), strides=(h, w), padding="valid")
        return y if self.keepdims else keras.ops.reshape(y, (-1, inputs.shape[-1]))

    cls.call = call
    try:
        yield
    finally:
        cls.call = original


def _int8(converter: tf.lite.TFLiteConverter, rows: np.ndarray) -> None:
    """Full-integer quantization: int8 weights, activations, input and outputs."""

    def calibration() -> Iterable[list[np.ndarray]]:
        for row in rows:
            yield [row[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def int8_report(model: keras.Model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """Full-integer post-training quantization of `model`, calibrated on `calibration` (training
    data only): file sizes of float and int8 TFLite, and the accuracy of every exit of each on (x, y)."""
    graphs = {"float32": to_tflite(model), "int8": to_tflite(model, calibration)}
    out: dict = {"size_bytes": {k: len(v) for k, v in graphs.items()}}
    out["size_reduction_pct"] = 100 * (1 - len(graphs["int8"]) / len(graphs["float32"]))
    for kind, content in graphs.items():
        runner = TFLiteRunner(content)
        preds = [runner(sample) for sample in x]
        out[f"{kind}_accuracy"] = {name: float(np.mean([p[name].argmax() == t for p, t in zip(preds, y, strict=True)]))
                                   for name in preds[0]}
    return out


class TFLiteRunner:
    """Batch-1 runner of a TFLite graph on ai-edge-litert: float in, dict of float outputs out
    (int8 tensors are quantized and dequantized with their own scales). Outputs are keyed by their
    signature names; `raw` calls skip the (de)quantization, as a device would."""

    def __init__(self, content: bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with quiet((2,)):  # LiteRT announces its XNNPACK delegate from C++
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            try:
                self.interpreter.allocate_tensors()
            except RuntimeError as e:  # XNNPACK refuses some graphs ("failed to prepare"): LiteRT's own kernels
                if "XNNPACK" not in str(e):
                    raise
                self.interpreter = Interpreter(model_content=content, num_threads=num_threads,
                                               experimental_op_resolver_type=(
                                                   OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
                self.interpreter.allocate_tensors()
        if self.interpreter.get_signature_list():
            runner = self.interpreter.get_signature_runner()
            details = runner.get_input_details()
            self.input_name = next(iter(details))
            self.input = details[self.input_name]
            self.outputs = runner.get_output_details()
        else:  # a graph without signatures (converted elsewhere, e.g. MLPerf Tiny's): one output is the final exit
            self.input = self.interpreter.get_input_details()[0]
            self.input_name = self.input["name"]
            out = self.interpreter.get_output_details()
            self.outputs = {"final": out[0]} if len(out) == 1 else {d["name"]: d for d in out}
        # tensor indices, so a call is set_tensor/invoke/get_tensor with no signature bookkeeping
        self._in, self._out = self.input["index"], {k: v["index"] for k, v in self.outputs.items()}
        by_index = {i: k for k, i in self._out.items()}
        self.output_order = [by_index[d["index"]] for d in self.interpreter.get_output_details()]  # graph order

    def invoke(self, x: np.ndarray) -> None:
        """One inference on an input already in the graph's dtype (shape without the batch axis)."""
        self.interpreter.set_tensor(self._in, x[None])
        self.interpreter.invoke()

    def get(self, name: str) -> np.ndarray:
        """A raw output of the last invoke, by signature name."""
        return self.interpreter.get_tensor(self._out[name])[0]

    def raw(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.invoke(x)
        return {k: self.get(k) for k in self._out}

    def quantize(self, x: np.ndarray) -> np.ndarray:
        d = self.input
        if tuple(np.shape(x)) != tuple(int(v) for v in d["shape"][1:]):

            raise TrecxError(f"the graph takes one input of shape {tuple(int(v) for v in d['shape'][1:])} (no batch "
                             f"axis), got {tuple(np.shape(x))}")
        if d["dtype"] == np.int8:
            scale, zero = d["quantization"]
            return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        return x.astype(d["dtype"])

    def dequantize(self, name: str, v: np.ndarray) -> np.ndarray:
        scale, zero = self.outputs[name]["quantization"]
        return (v.astype(np.float32) - zero) * scale if scale else v.astype(np.float32)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {k: self.dequantize(k, v) for k, v in self.raw(self.quantize(x)).items()}
