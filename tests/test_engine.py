"""The early-exit engine: sweep maths, weight transfer, joint loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from common.evaluation import sweep
from common.models import registry
from common.train.callbacks import EVWeightTransfer
from common.train.training import compile_model, keyed
from image_classification.model import resnet8


def onehot(labels, n=3, conf=0.9):
    p = np.full((len(labels), n), (1 - conf) / (n - 1))
    p[np.arange(len(labels)), labels] = conf
    return p


def test_sweep_extremes_and_ties():
    y = np.array([0, 1, 2, 0])
    early = onehot(np.array([0, 0, 2, 1]), conf=0.5)  # right, wrong, right, wrong
    early[2] = [0, 0, 1.0]  # a confidence of exactly 1
    final = onehot(y, conf=0.8)  # always right
    c = sweep.sweep([early, final], y, [1.0, 3.0], rhos=np.array([0.0, 0.5, 0.51, 1.0]))
    assert c["exit_rate"][:, 0].tolist() == [1.0, 1.0, 0.25, 0.25]  # rho 0: all; rho 0.5 ties exit; rho 1: conf 1
    assert c["accuracy"].tolist() == [0.5, 0.5, 1.0, 1.0]
    assert c["mflops"].tolist() == [1.0, 1.0, 2.5, 2.5]
    none = sweep.sweep([onehot(y, conf=0.4), final], y, [1.0, 3.0], rhos=np.array([0.99]))
    assert none["exit_rate"][0].tolist() == [0.0, 1.0] and none["mflops"][0] == 3.0


def test_multi_exit_sweep_charges_the_heads_passed():
    y = np.zeros(4, int)
    e1 = onehot(np.array([0, 1, 1, 1]), conf=0.9)
    e1[1:, :] = [0.2, 0.5, 0.3]  # only sample 0 confident at exit 1
    e2 = onehot(np.array([0, 0, 0, 1]), conf=0.9)
    e2[3] = [0.3, 0.4, 0.3]  # sample 3 not confident at exit 2
    final = onehot(np.array([0, 0, 0, 0]))
    c = sweep.sweep([e1, e2, final], y, [1.0, 2.5, 4.0], rhos=np.array([0.8]))
    assert c["exit_rate"][0].tolist() == [0.25, 0.5, 0.25]
    assert c["mflops"][0] == pytest.approx((1.0 + 2.5 + 2.5 + 4.0) / 4)  # the last one paid both heads
    assert c["accuracy"][0] == 1.0


def test_custom_confidences_replace_max_softmax():
    y = np.array([0, 1])
    probs = [onehot(y, conf=0.99), onehot(y)]
    c = sweep.sweep(probs, y, [1, 2], rhos=np.array([0.5]), confidences=[np.array([0.1, 0.9])])
    assert c["exit_rate"][0].tolist() == [0.5, 0.5]


def test_confidence_grid_resolves_saturated_heads():
    """Sigmoid heads squeezed near 0 (EENets/PTEENet after cost-aware training) still rank samples;
    the logit-spaced grid reaches exit rates between 0 and 1 that the 0.01 grid cannot."""
    y = np.zeros(100, int)
    conf = np.geomspace(1e-6, 5e-3, 100)  # every confidence below the first non-zero rho of RHOS
    probs = [onehot(y), onehot(y)]
    coarse = sweep.sweep(probs, y, [1, 2], rhos=sweep.RHOS, confidences=[conf])
    fine = sweep.sweep(probs, y, [1, 2], rhos=sweep.CONFIDENCE_RHOS, confidences=[conf])
    assert set(coarse["exit_rate"][:, 0]) == {0.0, 1.0}
    assert len(set(fine["exit_rate"][:, 0])) > 20
    assert set(sweep.RHOS) <= set(sweep.CONFIDENCE_RHOS)
    assert np.array_equal(sweep.sweep(probs, y, [1, 2], confidences=[conf])["rho"], sweep.CONFIDENCE_RHOS)
    assert np.array_equal(sweep.sweep(probs, y, [1, 2])["rho"], sweep.RHOS)


def test_oracle_and_tradeoffs():
    y = np.array([0, 1, 2, 0])
    early = onehot(np.array([0, 0, 2, 1]))
    final = onehot(np.array([0, 1, 0, 2]))
    o = sweep.oracle([early, final], y, [1.0, 3.0])
    assert o == {"accuracy": 0.75, "mflops": pytest.approx((1 + 3 + 1 + 1) / 4)}
    val = {"rho": np.array([0.0, 0.5, 1.0]), "accuracy": np.array([0.80, 0.89, 0.90]), "mflops": np.array([1, 2, 3.0])}
    test = {"rho": val["rho"], "accuracy": np.array([0.70, 0.88, 0.91]), "mflops": np.array([1.1, 2.1, 3.0])}
    rows = sweep.tradeoffs(val, test, base_val_acc=0.90, base_test_acc=0.90, base_mflops=3.0, drops=(1, 0.5, 20))
    assert [r["rho"] for r in rows] == [0.5, 1.0, 0.0]  # chosen on validation
    assert rows[0]["test_accuracy"] == 0.88 and rows[0]["test_flops_reduction_pct"] == pytest.approx(30.0)
    none = sweep.tradeoffs(val, test, base_val_acc=0.95, base_test_acc=0.9, base_mflops=3.0, drops=(1,))
    assert none[0]["rho"] is None


def _tiny_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    import tensorflow as tf

    x = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8), x, y


@pytest.mark.parametrize("layout", ["paper", "dwfirst"])
def test_weight_transfer_copies_then_stops_at_its_cutoff(layout: str):
    model = resnet8(layout, ev_assist=True)
    compile_model(model, {"early_exit": 0.5, "final": 1.0}, keras.optimizers.Adam(1e-2))
    ds, _, _ = _tiny_data()
    ee, ev = model.get_layer("early_exit").depthwise.kernel, model.get_layer("ev_assist").depthwise.kernel
    assert not np.allclose(ee.numpy(), ev.numpy())
    cb = EVWeightTransfer(until_fraction=0.4)  # 5 epochs: copy in epochs 0 and 1
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((cb.copies, np.allclose(ee.numpy(), ev.numpy())))

    model.fit(keyed(ds, ["early_exit", "final"]), epochs=5, callbacks=[cb, Probe()], verbose=0)
    assert [s[0] for s in seen] == [3, 6, 6, 6, 6]  # 3 batches per epoch, copying stops after epoch 1
    assert seen[1][1] and not seen[-1][1]  # equal while copying, trained apart afterwards


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_joint_loss_is_weighted_sum_for_any_batch_size(batch: int):
    model = resnet8("paper", ev_assist=True, l2=0.0)
    compile_model(model, {"early_exit": 0.5, "final": 1.0}, keras.optimizers.SGD(0.0))
    rng = np.random.default_rng(batch)
    x = rng.uniform(0, 255, (batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch)
    logs = model.evaluate(x, {"early_exit": y, "final": y}, batch_size=batch, verbose=0, return_dict=True)
    out = model(x, training=False)
    ce = keras.losses.SparseCategoricalCrossentropy()
    expected = 0.5 * float(ce(y, out["early_exit"])) + float(ce(y, out["final"]))
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_head_phase_keeps_the_backbone_and_a_resumed_run_keeps_its_best(tmp_path):
    """head_epochs trains only the heads on a frozen backbone, and the best value so far is read back
    from the run's log (so a resumed run does not let a worse epoch replace best.keras)."""
    import tensorflow as tf

    from common.train.training import TrainConfig, train

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 49, 10, 1)).astype("float32")
    y = rng.integers(0, 12, 32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    base = tmp_path / "base.keras"
    from keyword_spotting.model import dscnn

    dscnn().save(base)
    before = keras.models.load_model(base).get_layer(index=1).get_weights()[0]
    cfg = TrainConfig(variant="trecx", out_dir=str(tmp_path / "run"), init_from=str(base), epochs=3, head_epochs=2,
                      batch_size=16, lr=0.0, head_lr=1e-2)
    run = train(cfg, "keyword_spotting", ds, ds)
    model = keras.models.load_model(run / "best.keras")
    np.testing.assert_array_equal(model.get_layer(index=1).get_weights()[0], before)  # lr 0 after the heads
    assert (run / "heads.weights.h5").exists()
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 4  # header + 3 epochs
    best = min(float(r.split(",")[log[0].split(",").index("val_loss")]) for r in log[1:])
    from common.train.callbacks import best_so_far

    assert best_so_far(run / "log.csv", "val_loss", "min") == best


@pytest.mark.slow
def test_an_epoch_is_logged_and_checkpointed_before_its_backup(tmp_path, monkeypatch):
    """The backup marks an epoch done, so it comes last: the log row and best.keras (the EMA weights)
    are already written, and the model holds the raw weights that training resumes from."""
    import tensorflow as tf

    from common.train.training import TrainConfig, train
    from keyword_spotting.model import dscnn

    seen = []

    class Spy(keras.callbacks.BackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            run = tmp_path / "run"
            best = keras.models.load_model(run / "best.keras").trainable_variables[0]
            ema = self.model.optimizer._model_variables_moving_average[0]
            seen.append((len((run / "log.csv").read_text().splitlines()) - 1, np.asarray(best),
                         np.asarray(self.model.trainable_variables[0]), np.asarray(ema)))
            super().on_epoch_end(epoch, logs)

    monkeypatch.setattr(keras.callbacks, "BackupAndRestore", Spy)
    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices((rng.standard_normal((32, 49, 10, 1)).astype("float32"),
                                             rng.integers(0, 12, 32))).batch(16)
    dscnn().save(tmp_path / "base.keras")
    cfg = TrainConfig(variant="trecx", out_dir=str(tmp_path / "run"), init_from=str(tmp_path / "base.keras"),
                      epochs=2, batch_size=16, lr=1e-2, ema=0.5)
    train(cfg, "keyword_spotting", ds, ds)
    rows, best, model, ema = seen[0]
    assert rows == 1  # the epoch's log row is written before its backup
    np.testing.assert_array_equal(best, ema)  # best.keras holds the moving averages ...
    assert not np.array_equal(model, ema)  # ... and the model the raw weights again


def test_cached_outputs_belong_to_their_model(tmp_path):
    from common.evaluation.evaluate import cached_outputs

    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    data = {"test": (x, np.arange(4))}
    a, b = resnet8(), resnet8()
    first = cached_outputs(a, data, tmp_path / "o.npz")
    np.testing.assert_array_equal(cached_outputs(a, data, tmp_path / "o.npz")["test"]["final"], first["test"]["final"])
    other = cached_outputs(b, data, tmp_path / "o.npz")  # other weights: not served from the cache
    np.testing.assert_allclose(other["test"]["final"], b.predict(x, verbose=0)["final"], atol=1e-6)


def test_mixture_and_its_loss_follow_eenets():
    """Weights h1, (1-h1) h2, (1-h1)(1-h2); loss = CE(mixed prediction) + lambda x expected cost."""
    from common.models.prior import ConfidenceMixture, MixtureLoss

    p = [np.array([[0.8, 0.2]]), np.array([[0.4, 0.6]]), np.array([[0.1, 0.9]])]
    h = [np.array([[0.5]]), np.array([[0.25]])]
    out = np.asarray(ConfidenceMixture([0.2, 0.5, 1.0])([*p, *h]))
    w = [0.5, 0.5 * 0.25, 0.5 * 0.75]
    np.testing.assert_allclose(out[0, :2], sum(wi * pi[0] for wi, pi in zip(w, p, strict=True)), atol=1e-6)
    assert out[0, 2] == pytest.approx(0.5 * 0.2 + 0.125 * 0.5 + 0.375 * 1.0)
    loss = float(MixtureLoss(lam=0.1)(np.array([1]), out))
    assert loss == pytest.approx(-np.log(out[0, 1]) + 0.1 * out[0, 2], rel=1e-5)


def test_post_trained_exits_leave_the_backbone_bit_identical(tmp_path):
    """PTEENet: only the branches and confidence heads train; every backbone weight, the final
    classifier's included, stays exactly as warm-started."""
    import tensorflow as tf

    from common.train.training import TrainConfig, train
    from keyword_spotting.model import dscnn

    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices((rng.standard_normal((32, 49, 10, 1)).astype("float32"),
                                             rng.integers(0, 12, 32))).batch(16)
    base = tmp_path / "base.keras"
    dscnn().save(base)
    cfg = TrainConfig(variant="pteenet", out_dir=str(tmp_path / "run"), init_from=str(base), epochs=2,
                      batch_size=16, head_lr=1e-2)
    model = keras.models.load_model(train(cfg, "keyword_spotting", ds, ds) / "best.keras")
    source = keras.models.load_model(base)
    got = [w for layer in model.layers if layer.weights and not layer.name.startswith(("exit_", "confidence_"))
           for w in layer.get_weights()]
    want = [w for layer in source.layers if layer.weights for w in layer.get_weights()]
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(cfg.seed)  # train() builds with this seed: the heads as they started
    start = registry.get("keyword_spotting", "pteenet").builder().get_layer("exit_1_branch_conv").get_weights()[0]
    assert np.abs(model.get_layer("exit_1_branch_conv").get_weights()[0] - start).max() > 0  # the heads did train


def test_report_compares_prior_methods_with_confidence_heads(tmp_path):
    """report.test_models on T-RecX and two prior methods (one thresholding confidence heads) writes Fig 7,
    Table 2 and comparison.md, with every method's trade-offs against the baseline."""
    from common.files import read_csv
    from common.reporting import report

    rng = np.random.default_rng(0)
    data = {s: (rng.standard_normal((40, 49, 10, 1)).astype("float32"), rng.integers(0, 12, 40))
            for s in ("val", "test")}
    models = {n: registry.get("keyword_spotting", n).builder() for n in ("baseline", "trecx", "sdn", "eenets")}
    logs = tmp_path / "models"  # the training cost is read from the tested folder's logs, not pretrained/
    logs.mkdir()
    (logs / "sdn.log.csv").write_text("epoch,epoch_seconds\n0,36\n1,36\n")
    report.test_models(models, data, tmp_path, "baseline", task="keyword_spotting", models_dir=logs)
    assert [r["model"] for r in read_csv(tmp_path / "training_cost.csv")] == ["sdn"]
    for f in ("fig7_prior_methods.png", "table2.csv", "comparison.md", "table1_paper.csv", "table2_paper.csv"):
        assert (tmp_path / f).exists(), f
    rows = {r["model"]: r for r in read_csv(tmp_path / "table2.csv")}
    assert set(rows) == {"baseline", "trecx", "sdn", "eenets"} and rows["sdn"]["exits"] == 4
    text = (tmp_path / "comparison.md").read_text()
    assert "| eenets |" in text and "Not trained yet: branchynet, pteenet" in text
    assert text.startswith(f"# T-RecX vs prior early-exit methods: keyword_spotting ({tmp_path.name})\n")
    # the paper's numbers beside ours: Table 1 for baseline and trecx, Table 2 for trecx, branchynet, sdn
    t1 = {(r["model"], r["metric"]): r for r in read_csv(tmp_path / "table1_paper.csv")}
    assert t1[("trecx", "early exit test accuracy (%)")]["paper"] == 88.5
    assert t1[("baseline", "baseline params")]["ours"] == rows["baseline"]["params"]
    t2 = {r["model"]: r for r in read_csv(tmp_path / "table2_paper.csv")}
    assert t2["sdn"]["paper_exit_accuracies"] == "63.7 / 81.7 / 89.0 / 91.8" and t2["branchynet"]["params"] is None
    assert "## Beside the paper" in text
    curve = read_csv(tmp_path / "eenets" / "benefit_curve_test.csv")
    assert {"exit_rate_exit_1", "exit_rate_final"} <= set(curve[0])


def test_predict_pads_to_whole_batches_without_changing_any_row():
    from common.evaluation.evaluate import predict

    inputs = keras.Input((6,))
    model = keras.Model(inputs, {"final": keras.layers.Dense(3, activation="softmax", name="final")(inputs)})
    x = np.random.default_rng(0).normal(size=(150, 6)).astype("float32")
    got = predict(model, x, batch_size=64)["final"]  # 150 rows: three batches of 64, the last one padded
    assert got.shape == (150, 3)
    np.testing.assert_allclose(got, model.predict(x, batch_size=150, verbose=0)["final"], rtol=0, atol=1e-6)
    assert predict(model, x[:5], batch_size=64)["final"].shape == (5, 3)  # fewer rows than a batch: one batch
