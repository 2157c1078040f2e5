"""TFLite export: float or full-integer int8 graphs, and T-RecX models split at the exit.

The head graph maps the input to the early-exit probabilities plus the feature map the rest of
the network needs; the tail maps that feature map to the final probabilities (EV assist
included). Outputs are read by name through the signature runner, as TFLite may reorder them.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from common.console import quiet


def split_at_exit(model: keras.Model, exit_layer: str = "early_exit") -> tuple[keras.Model, keras.Model]:
    """(head, tail): head(x) -> {"early_exit", "features"}, tail(features) -> {"final"}."""
    tap = model.get_layer(exit_layer).input
    outputs = model.output
    head = keras.Model(model.inputs, {"early_exit": outputs["early_exit"], "features": tap}, name="head")
    tail = keras.Model(tap, {"final": outputs["final"]}, name="tail")
    return head, tail


def split_at_exits(model: keras.Model) -> list[keras.Model]:
    """A k-exit model cut into k + 1 segments: segment i maps the previous segment's feature map (the input,
    for the first) to {exit i, "features": the map exit i reads}; the last maps its map to {"final"}. The
    backbone must reach each later layer only through these maps (true of chains and of residual stacks
    tapped after their add)."""
    from common.models import contract

    names = contract.exit_names(model)
    taps = [model.get_layer(n).input for n in names[:-1]]
    segments, src = [], model.inputs
    for i, (name, tap) in enumerate(zip(names[:-1], taps, strict=True)):
        segments.append(keras.Model(src, {name: model.output[name], "features": tap}, name=f"segment_{i}"))
        src = tap
    segments.append(keras.Model(src, {contract.FINAL: model.output[contract.FINAL]}, name=f"segment_{len(taps)}"))
    return segments


def to_tflite(model: keras.Model, representative: np.ndarray | None = None, samples: int = 200) -> bytes:
    """Convert `model` (dict outputs) to TFLite: float32, or full-integer int8 (int8 input and
    outputs) calibrated on up to `samples` rows of `representative` (take them from training data)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # via a SavedModel, so variables are frozen for calibration
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
        from ai_edge_litert.interpreter import Interpreter

        with quiet((2,)):  # LiteRT announces its XNNPACK delegate from C++
            self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        runner = self.interpreter.get_signature_runner()
        details = runner.get_input_details()
        self.input_name = next(iter(details))
        self.input = details[self.input_name]
        self.outputs = runner.get_output_details()
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
        if d["dtype"] == np.int8:
            scale, zero = d["quantization"]
            return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        return x.astype(d["dtype"])

    def dequantize(self, name: str, v: np.ndarray) -> np.ndarray:
        scale, zero = self.outputs[name]["quantization"]
        return (v.astype(np.float32) - zero) * scale if scale else v.astype(np.float32)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {k: self.dequantize(k, v) for k, v in self.raw(self.quantize(x)).items()}
