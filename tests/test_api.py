"""The public API (common.api): an exit attached to any Keras classifier, trained, calibrated, exported
and run, and one-line errors for the models it cannot take."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from common import api
from common.models import contract


def small_cnn(classes: int = 4) -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(16, 3, padding="same", name="conv3")(x))
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="predictions")(x), name="small")


def test_attach_gives_the_contract_and_keeps_the_classifier_without_ev():
    model = small_cnn()
    x = np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 3)).astype("float32")
    plain = api.attach_exit(model, "conv1", ev_assist=False)
    assert contract.exit_names(plain) == ["early_exit", "final"]
    np.testing.assert_allclose(plain.predict(x, verbose=0)["final"], model.predict(x, verbose=0), atol=1e-6)
    ev = api.attach_exit(model, "conv2")
    assert {"ev_assist", "ev_concat"} <= {la.name for la in ev.layers}
    costs = api.exit_costs(ev)
    assert costs["early_exit"]["mflops"] < costs["final"]["mflops"]


@pytest.mark.parametrize(("make", "after", "names"), [
    (lambda: small_cnn(), "conv9", ("small", "no layer 'conv9'", "conv1")),
    (lambda: small_cnn(), "pool", ("'pool'", "feature map")),
])
def test_bad_layers_get_one_line_errors(make, after, names):
    with pytest.raises(api.ModelError) as err:
        api.attach_exit(make(), after)
    assert all(n in str(err.value) for n in names) and "\n" not in str(err.value)


def test_a_layer_off_the_path_to_the_output_is_refused():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, name="conv1")(inputs)
    layers.Conv2D(4, 1, name="side")(x)  # a branch the output never reads
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(api.ModelError, match="no layer 'side' on the path"):
        api.attach_exit(model, "side")


def test_models_that_are_not_single_input_softmax_classifiers_are_refused():
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(a + b)))
    with pytest.raises(api.ModelError, match="2 inputs"):
        api.attach_exit(two, "conv")
    x = keras.Input((8, 8, 3))
    logits = keras.Model(x, layers.Dense(2, name="logits")(layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))))
    with pytest.raises(api.ModelError, match="softmax"):
        api.attach_exit(logits, "conv2d")
    flat = keras.Model(x, layers.Dense(2, activation="softmax")(layers.Flatten()(layers.Conv2D(4, 3, name="c")(x))))
    with pytest.raises(api.ModelError, match="ev_assist=False"):
        api.attach_exit(flat, "c")
    assert contract.exit_names(api.attach_exit(flat, "c", ev_assist=False)) == ["early_exit", "final"]


ARCHITECTURES = {  # keras.applications networks this project does not build, on a tiny input: (build, after, EV)
    "mobilenet": (lambda: keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None,
                                                       classes=10), "conv_pw_3_relu", True),
    # (MobileNetV2's inverted residuals: tests/test_own_networks.py's residual network covers a tap after an add)
    # a hidden 1x1 conv sits between its pooling and its classifier: no place for the early view
    "mobilenetv3small": (lambda: keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None,
                                                                     classes=10), "expanded_conv_2_add", False),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_attach_train_calibrate_export_run_on_keras_applications(name: str):
    import tensorflow as tf

    from common.edge.export import TFLiteRunner

    build, after, ev = ARCHITECTURES[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 64)
    if not ev:
        with pytest.raises(api.ModelError, match="ev_assist=False"):
            api.attach_exit(build(), after)
    model = api.attach_exit(build(), after, ev_assist=ev)
    history = api.train_exit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32), epochs=1)
    assert np.isfinite(history.history["loss"][-1])
    assert history.data_read["train_ds"] == "trained the weights" and history.data_read["val_ds"] is None
    cal = api.calibrate_exit(model, x, y)  # 64 samples certify nothing: the full model is deployed
    assert cal.rho is None and cal.certified == () and not cal.ok
    assert next(iter(cal.p_values.values())) > cal.delta  # the first rho tested (1.0) was not rejected
    graphs = api.export_int8(model, x[:16])
    head = graphs[0]
    keras_conf = api.outputs(model, x)[0].max(axis=1)
    rho = float(np.median(keras_conf))
    runtime = api.runtime(graphs, rho)
    exits = np.array([runtime(r).exit == "early_exit" for r in x])
    assert np.isfinite(TFLiteRunner(head)(x[0])["early_exit"]).all()
    # the int8 runtime exits where Keras does, but for samples within int8 round-off of rho
    clear = np.abs(keras_conf - rho) > 0.02
    assert (exits[clear] == (keras_conf[clear] >= rho)).all()
    assert api.runtime(graphs, None)(x[0]).exit == "final"


def test_two_exits_train_export_and_run_where_keras_exits():
    """k = 2: exits exit_1, exit_2 with an EV layer each (the weight copy reaches both), three int8 graphs,
    and the runtime leaves at the first exit whose confidence reaches its own threshold, as the sweep says."""
    import tensorflow as tf

    from common.evaluation import sweep

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 48)
    x = (rng.uniform(0, 1, (48, 16, 16, 3)) + np.eye(4, 3)[y][:, None, None, :]).astype("float32")  # learnable
    model = api.attach_exit(small_cnn(), ["conv1", "conv2"])
    assert contract.exit_names(model) == ["exit_1", "exit_2", "final"]
    api.train_exit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=3, w_ee=[0.3, 0.5],
                   transfer_until=1.0, optimizer=keras.optimizers.Adam(1e-2))
    for i in (1, 2):  # the copy ran: each EV kernel is its exit's (first channels)
        ev = np.asarray(model.get_layer(f"ev_assist_{i}").depthwise.kernel)
        np.testing.assert_array_equal(ev, np.asarray(model.get_layer(f"exit_{i}").depthwise.kernel)[:, :, :ev.shape[2]])
    costs = api.exit_costs(model)
    assert costs["exit_1"]["mflops"] < costs["exit_2"]["mflops"] < costs["final"]["mflops"]
    graphs = api.export_int8(model, x[:16])
    assert len(graphs) == 3
    probs = api.outputs(model, x)
    rhos = [float(np.median(p.max(axis=1))) for p in probs[:2]]
    runtime = api.runtime(graphs, rhos)
    got = np.array([contract.exit_names(model).index(runtime(r).exit) for r in x])

    def rule(conf: np.ndarray) -> np.ndarray:  # the first exit whose confidence reaches its threshold
        return np.where(conf[0] >= rhos[0], 0, np.where(conf[1] >= rhos[1], 1, 2))

    int8 = [runtime.all_exits(r) for r in x]  # every exit's int8 output, dequantized
    conf8 = np.array([[o[k].max() for o in int8] for k in range(2)])
    np.testing.assert_array_equal(got, rule(conf8))  # exactly the rule, on the int8 confidences
    conf = np.stack([p.max(axis=1) for p in probs[:2]])
    expect = rule(conf)
    clear = (np.abs(conf - np.array(rhos)[:, None]) > 0.05).all(axis=0)  # away from int8 round-off
    assert (got[clear] == expect[clear]).all() and (got == expect).mean() >= 0.8  # and, but near rho, Keras's
    rates = sweep.vector_sweep(probs, y, [1, 2, 3], np.array(rhos))["exit_rate"][0]  # the sweep's rule is the same
    np.testing.assert_allclose(rates, np.bincount(expect, minlength=3) / len(x))
    assert runtime.runs[0] == 2 * len(x) and runtime.runs[2] == (got == 2).sum() + len(x)  # + all_exits' runs


def test_exit_layers_out_of_order_are_refused():
    with pytest.raises(api.ModelError, match="'conv1' does not come after 'conv2'"):
        api.attach_exit(small_cnn(), ["conv2", "conv1"])


def test_the_runtime_runs_the_threshold_certified_on_the_int8_graphs():
    """Float and int8 certificates differ when quantization moves the exits (here: int8 calibrated on inputs
    unlike the data, so the early exit's int8 confidences drift); the runtime takes the int8 one, and refuses a
    certificate of the float outputs."""
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (600, 16, 16, 3)).astype("float32")
    model = api.attach_exit(small_cnn(), "conv1")
    probs = api.outputs(model, x)
    y = probs[-1].argmax(axis=1)  # labels the float final exit gets right: the float model certifies a lot
    right = np.ones(len(y), bool)
    graphs = api.export_int8(model, 0.05 * x[:32])  # a poor int8 calibration set
    cal_float = api.calibrate_exit(model, x, y, right, max_drop=0.05)
    cal_int8 = api.calibrate_exit(graphs, x, y, right, max_drop=0.05)
    assert cal_float.rho != cal_int8.rho and "int8 graph outputs" in cal_int8.samples
    rt = api.runtime(graphs, cal_int8)
    assert rt.rhos == [float("inf") if cal_int8.rho is None else cal_int8.rho]
    assert api.calibrate_exit(rt, x[:100], y[:100], right[:100], max_drop=0.05).samples.endswith("int8 graph outputs")
    with pytest.raises(api.ModelError, match="certified the float Keras outputs"):
        api.runtime(graphs, cal_float)


def test_sequential_and_wrapped_outputs_work_and_the_users_model_is_left_as_it_was():
    import tensorflow as tf

    seq = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(8, 3, padding="same", activation="relu",
                                                                    name="c1"),
                            layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2"),
                            layers.GlobalAveragePooling2D(name="gap"), layers.Dense(4, activation="softmax")],
                           name="seq")
    seq.get_layer("c1").trainable = False  # the user froze it
    before = [w.copy() for w in seq.get_weights()]
    model = api.attach_exit(seq, "c1")
    assert contract.exit_names(model) == ["early_exit", "final"]
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (32, 16, 16, 3)).astype("float32"), rng.integers(0, 4, 32)
    frozen = [w.copy() for w in model.get_layer("c1").get_weights()]
    api.train_exit(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(before, seq.get_weights(), strict=True))  # untouched
    assert not model.get_layer("c1").trainable
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.get_layer("c1").get_weights(), strict=True))
    assert not np.array_equal(model.get_layer("c2").get_weights()[0], seq.get_layer("c2").get_weights()[0])
    net = small_cnn()
    for wrapped in (keras.Model(net.inputs, [net.output]), keras.Model(net.inputs, {"probs": net.output})):
        assert contract.exit_names(api.attach_exit(wrapped, "conv1")) == ["early_exit", "final"]
    shared = small_cnn()
    assert api.attach_exit(shared, "conv1", share=True).get_layer("conv1") is shared.get_layer("conv1")
    with pytest.raises(api.ModelError, match="share=True needs a functional one"):
        api.attach_exit(seq, "c1", share=True)

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(api.ModelError, match=r"subclassed keras\.Model"):
        api.attach_exit(Sub(), "c1")


def test_a_runtime_fed_the_wrong_shape_says_so_in_one_line():
    from common.errors import TrecxError

    model = api.attach_exit(small_cnn(), "conv1")
    x = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    runtime = api.runtime(api.export_int8(model, x), 0.5)
    with pytest.raises(TrecxError, match=r"shape \(16, 16, 3\) \(no batch axis\), got \(1, 16, 16, 3\)"):
        runtime(x[:1])


def test_an_exit_signal_goes_from_fit_to_certificate_to_runtime_and_sources(tmp_path):
    """A gate fitted on validation data, certified on other data, runs in the runtime and the C++ sources that
    calibration names; a signal with parameters but none fitted, a wrong name, or a runtime asked for another
    signal than the one certified are one-line errors."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (400, 16, 16, 3)).astype("float32")
    model = api.attach_exit(small_cnn(), "conv1")
    graphs = api.export_int8(model, x[:32])
    x_val, x_cal = x[:200], x[200:]
    gate = api.fit_signal(graphs, x_val, signal="gate")  # no labels: it predicts agreement with the final exit
    assert gate.name == "gate" and len(gate.params) == 1 and "200 samples" in gate.fitted_on
    y = api.outputs(model, x_cal)[-1].argmax(axis=1)
    cal = api.calibrate_exit(graphs, x_cal, y, np.ones(len(y), bool), max_drop=0.1, signal=gate)
    assert cal.signal == gate and cal.ok
    rt = api.runtime(graphs, cal)
    assert rt.signal == gate and "on the gate signal" in rt.provenance
    exits = {rt(r).exit for r in x_cal[:40]}
    assert exits <= {"early_exit", "final"}
    spec = api.export_sources(graphs, cal, tmp_path / "fw")
    assert spec.signal == "gate" and "kSignal0" in (tmp_path / "fw" / "trecx_model.cc").read_text()
    with pytest.raises(ValueError, match="fit it on validation data with fit_signal"):
        api.calibrate_exit(graphs, x_cal, y, signal="temperature")
    with pytest.raises(ValueError, match="signal must be one of"):
        api.calibrate_exit(graphs, x_cal, y, signal="softmax")
    with pytest.raises(ValueError, match="certified on the gate signal's scores"):
        api.runtime(graphs, cal, signal="margin")
    assert api.runtime(graphs, 0.5, signal="margin").signal.name == "margin"  # hand-given thresholds: any signal
