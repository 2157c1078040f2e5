"""The MLPerf Tiny reference models through our builders and our data front ends (real data)."""

from __future__ import annotations

import keras
import numpy as np
from conftest import SHARED, needs_shared

from common.data import audio
from common.models import registry, weights

REF = SHARED / "reference_models" / "mlperf_tiny"


@needs_shared("datasets", "speech_commands")
@needs_shared("reference_models", "mlperf_tiny", "keyword_spotting", "kws_ref_model")
def test_mlperf_dscnn_through_our_front_end(tmp_path):
    """Proof of front-end equivalence: the reference DS-CNN keeps its accuracy on our MFCCs."""
    data = audio.load_speech_commands(SHARED / "datasets")
    model = registry.get("keyword_spotting", "baseline").builder()
    weights.load_backbone(model, weights.from_checkpoint(REF / "keyword_spotting" / "kws_ref_model"))
    acc = float((model.predict(audio.features(data.wav["test"]), verbose=0)["final"].argmax(1)
                 == data.y["test"]).mean())
    print(f"MLPerf DS-CNN on {len(data.y['test'])} local test clips through our front end: {100 * acc:.2f}%")
    assert acc >= 0.85


@needs_shared("datasets", "speech_commands")
@needs_shared("reference_models", "mlperf_tiny", "keyword_spotting", "kws_ref_model.tflite")
def test_our_dscnn_agrees_with_the_reference_int8_tflite():
    """An independent check of the builder and weight copy: the MLPerf int8 TFLite file and our
    float model with the reference weights agree on nearly every test clip."""
    from ai_edge_litert.interpreter import Interpreter

    data = audio.load_speech_commands(SHARED / "datasets")
    x = audio.features(data.wav["test"])
    model = registry.get("keyword_spotting", "baseline").builder()
    weights.load_backbone(model, weights.from_checkpoint(REF / "keyword_spotting" / "kws_ref_model"))
    ours = model.predict(x, verbose=0)["final"].argmax(1)
    interp = Interpreter(model_path=str(REF / "keyword_spotting" / "kws_ref_model.tflite"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    theirs = []
    for sample in x:
        q = np.clip(np.round(sample / scale + zero), -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], q[None])
        interp.invoke()
        theirs.append(int(interp.get_tensor(out["index"])[0].argmax()))
    assert float((ours == np.array(theirs)).mean()) >= 0.95


@needs_shared("reference_models", "mlperf_tiny", "image_classification", "pretrainedResnet.h5")
def test_resnet8_builder_reproduces_the_reference_h5():
    path = REF / "image_classification" / "pretrainedResnet.h5"
    ref = keras.models.load_model(path, compile=False)
    model = registry.get("image_classification", "baseline").builder()
    weights.load_backbone(model, weights.from_h5(path))
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    assert np.abs(ref.predict(x, verbose=0) - model.predict(x, verbose=0)["final"]).max() < 1e-4


@needs_shared("reference_models", "mlperf_tiny", "visual_wake_words", "vww_96.h5")
def test_mobilenet_builder_reproduces_the_reference_h5():
    class LegacyDepthwise(keras.layers.DepthwiseConv2D):  # the h5 stores a Keras 2 `groups` key
        def __init__(self, *args, groups=None, **kwargs):
            super().__init__(*args, **kwargs)

    path = REF / "visual_wake_words" / "vww_96.h5"
    ref = keras.models.load_model(path, compile=False, custom_objects={"DepthwiseConv2D": LegacyDepthwise})
    model = registry.get("visual_wake_words", "baseline").builder()
    weights.load_backbone(model, weights.from_h5(path))
    x = np.random.default_rng(0).uniform(0, 255, (8, 96, 96, 3)).astype("float32")
    assert np.abs(ref.predict(x / 255.0, verbose=0) - model.predict(x, verbose=0)["final"]).max() < 1e-4


def test_warm_start_pads_a_wider_final_classifier(tmp_path):
    """An EV-assisted model warm-started from a baseline predicts exactly as the baseline at first."""
    base = registry.get("keyword_spotting", "baseline").builder()
    base.save(tmp_path / "base.keras")
    trecx = registry.get("keyword_spotting", "trecx").builder()
    weights.warm_start(trecx, tmp_path / "base.keras")
    x = np.random.default_rng(1).standard_normal((4, 49, 10, 1)).astype("float32")
    np.testing.assert_allclose(trecx(x)["final"], base(x)["final"], atol=1e-5)
