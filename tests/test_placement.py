"""The placement search and the device cost model: candidate taps, the cost of a candidate against the FLOPs of
the same exits attached for real, the ranking, the command on a user's .keras, and the instructions-per-MAC
table (its fit, its error on held-out layers, the estimate labelled as such)."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fake_deployment, summary_dict
from keras import layers as L

from common import api
from common.commands import costmodel as costmodel_cmd
from common.commands import place
from common.edge import costmodel
from common.errors import ConfigError, ModelError, ModelFileError
from common.models import flops
from common.models.taps import candidate_taps, placed
from common.studies import placement


def small_cnn() -> keras.Model:
    return keras.Sequential([keras.Input((16, 16, 3)), L.Rescaling(1 / 255.0, name="scale"),
                             L.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
                             L.Conv2D(16, 3, strides=2, padding="same", name="c2"), L.ReLU(name="r2"),
                             L.Dropout(0.1, name="drop"), L.Conv2D(16, 3, padding="same", activation="relu", name="c3"),
                             L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="c4"),
                             L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")], name="small_cnn")


def residual() -> keras.Model:
    x = inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="b1_conv1")(x)
    y = L.Conv2D(8, 3, padding="same", name="b1_conv2")(y)
    x = L.ReLU(name="b1_out")(L.Add()([x, y]))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c5")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="c6")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(x)), name="res")


def toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 120, (n, 16, 16, 3)).astype("float32")
    for c in range(3):
        x[y == c, :, :, c] += 120
    return x, y


def trained(build) -> keras.Model:
    keras.utils.set_random_seed(0)
    m = build()
    x, y = toy(256, 0)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, verbose=0)
    return m


def test_candidate_taps_end_blocks_in_order_skipping_input_scaling_inside_skips_and_the_tail():
    assert candidate_taps(small_cnn()) == ["c1", "drop", "c3"]  # r2 feeds the dropout; c4 leaves < 10% after it
    assert candidate_taps(residual()) == ["stem", "b1_out", "c5"]  # not inside the block: a skip crosses it
    with pytest.raises(ModelError, match="no layer an exit can follow"):
        candidate_taps(keras.Sequential([keras.Input((8,)), L.Dense(3, activation="softmax")]))


def test_a_candidates_costs_are_those_of_the_same_exits_attached_for_real():
    model = trained(small_cnn)
    x, y = toy(96, 1)
    result = placement.place(model, tf.data.Dataset.from_tensor_slices(toy(128, 2)).batch(32), (x, y), ks=(1, 2),
                             widths=("none", "1x"), epochs=1, budgets=(5.0,))
    assert result.cpu_seconds > 0 and len(result.heads) == 2 * 3
    for row in (r for r in result.ranking if r["widths"] == "1x 1x" and r["taps"] == "c1 c3"):
        attached = api.attach_exit(model, ["c1", "c3"], pointwise=[8, 16], ev_assist=False)
        want = [flops.exit_costs(attached)[n]["mflops"] for n in ("exit_1", "exit_2")]
        assert [float(c) for c in row["exit_cost"].split()] == pytest.approx(want, rel=1e-3)
        added = sum(h["flops_head"] for h in result.heads if h["width"] == "1x" and h["tap"] in ("c1", "c3"))
        assert row["baseline_cost"] + added == pytest.approx(flops.exit_costs(attached)["final"]["mflops"], rel=1e-3)
        break
    else:
        pytest.fail("the pair c1 + c3 of width 1x was not scored")
    assert {r["k"] for r in result.ranking} == {1, 2} and {r["rule"] for r in result.ranking} == set(placement.RULES)
    best = result.best("flops", "validation", 5.0)
    assert best["cut_pct"] == max(r["cut_pct"] for r in result.ranking if r["cost"] == "flops" and r["cut_pct"]
                                  is not None and r["rule"] == "validation")
    assert best["cal_drop_points"] <= 5.0 + 1e-9


def test_a_placed_model_puts_the_exits_after_the_taps_at_those_positions():
    model = placed(small_cnn, (0, 2), ("1x", "none"))
    assert [n for n in model.output] == ["exit_1", "exit_2", "final"]
    assert model.get_layer("exit_1").input is model.get_layer("c1").output
    with pytest.raises(ModelError, match="3 candidate taps; position 5"):
        placed(small_cnn, (5,), ("1x",))


def test_place_command_on_a_users_keras_file(tmp_path):
    model = trained(residual)
    model.save(tmp_path / "res.keras")
    (tx, ty), (cx, cy), (sx, sy) = toy(128, 3), toy(64, 4), toy(64, 5)
    np.savez(tmp_path / "data.npz", train_x=tx, train_y=ty, cal_x=cx, cal_y=cy, test_x=sx, test_y=sy)
    out = tmp_path / "placed"
    place.main(["--model", str(tmp_path / "res.keras"), "--data", str(tmp_path / "data.npz"), "--cost", "flops",
                "--widths", "1x", "--epochs", "1", "--budgets", "5", "--out-dir", str(out)])
    rec = json.loads((out / "placement.json").read_text())
    assert rec["cpu_minutes"] > 0 and rec["test_note"] and (out / "placement.png").stat().st_size > 0
    rows = (out / "placement.csv").read_text().splitlines()
    assert rows[0].startswith("cost,rule,budget_points,k,taps")
    assert len(rows) == 1 + 2 * 7  # 3 singles, 3 pairs, 1 triple, under both rules
    with pytest.raises(ConfigError, match="give --task, or --model with --data"):
        place.main(["--model", str(tmp_path / "res.keras")])
    with pytest.raises(ConfigError, match="cost 'cortex-m9/x' is not known"):  # before any data is read
        place.main(["--task", "visual_wake_words", "--cost", "cortex-m9/x"])
    with pytest.raises(ConfigError, match=r"--widths: each one of none, 0\.5x, 1x, 2x, got 3x"):
        place.main(["--task", "visual_wake_words", "--widths", "3x"])


def test_cost_names_are_checked_in_one_line():
    assert costmodel.parse("flops").unit == "MFLOPs"
    c = costmodel.parse("cortex-m4/cmsis_nn:estimate")
    assert (c.cpu, c.kernels, c.estimate, c.name) == ("cortex-m4", "cmsis_nn", True, "cortex-m4/cmsis_nn:estimate")
    with pytest.raises(ConfigError, match=r"cost 'cortex-m9/cmsis_nn' is not known.*cortex-m4"):
        costmodel.parse("cortex-m9/cmsis_nn")


def test_graph_ops_split_a_segment_into_backbone_and_exit_head():
    model = trained(small_cnn)
    seg = api.export_int8(api.attach_exit(model, "drop", ev_assist=False), toy(32, 6)[0])
    head = costmodel.graph_ops(seg[0])
    assert {r["op"] for r in head if r["part"] == "backbone"} == {"CONV_2D"}  # c1, c2 (+ scale folded or not)
    assert "FULLY_CONNECTED" in {r["op"] for r in head if r["part"] == "head"}
    assert all(r["part"] == "backbone" for r in costmodel.graph_ops(seg[1]))
    conv = [r for r in head if r["op"] == "CONV_2D" and r["part"] == "backbone"]
    assert conv[0]["macs"] == 16 * 16 * 8 * 3 * 3 * 3 and {r["kernel"] for r in conv} == {"3x3"}
    assert [r["stride"] for r in conv] == [1, 2]
    assert {(r["op"], r["kernel"]) for r in head if r["part"] == "head"} >= {("CONV_2D", "1x1"),
                                                                            ("DEPTHWISE_CONV_2D", "2x2")}


def test_the_table_recovers_known_rates_and_reports_its_error_on_held_out_layers(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for task, n in (("a", 30), ("b", 30)):
        for _ in range(n):
            out = int(rng.integers(1e3, 1e5))
            macs = out * 4 * int(rng.integers(1, 20))  # a 1x1 conv with a multiple of 4 input channels
            rows.append({"op": "CONV_2D", "kernel": "1x1", "stride": 1, "macs": macs, "out_elements": out,
                         "in_elements": out, "task": task, "instructions": 2.0 * macs + 30 * out + 500})
            rows.append({"op": "SOFTMAX", "kernel": "", "stride": 1, "macs": 0, "out_elements": 10, "in_elements": 10,
                         "task": task, "instructions": 700.0})
    table = costmodel.fit(rows)
    assert table["CONV_2D 1x1"]["per_mac"] == pytest.approx(2.0, rel=1e-6)
    assert costmodel.predict(table, {"op": "CONV_2D", "kernel": "1x1", "stride": 1, "macs": 1000, "out_elements": 10,
                                     "in_elements": 10}) == pytest.approx(2000 + 300 + 500, rel=1e-6)
    errors = costmodel.held_out(rows)
    assert {e["held_out"] for e in errors} == {"task a", "task b", "random half 0", "random half 1"}
    assert all(e["median_layer_error_pct"] < 1e-6 for e in errors)
    costmodel.write_table(table, tmp_path / "t.csv")
    softmax = {"op": "SOFTMAX", "kernel": "", "stride": 1, "macs": 0, "out_elements": 10, "in_elements": 10}
    assert costmodel.predict(costmodel.read_table(tmp_path / "t.csv"), softmax) == pytest.approx(700, rel=1e-6)
    with pytest.raises(ConfigError, match="no instructions-per-MAC table"):
        costmodel.read_table(tmp_path / "none.csv")


def test_costmodel_command_fits_every_tasks_measured_layers(tmp_path):
    for task in ("keyword_spotting", "visual_wake_words"):
        (tmp_path / task).mkdir()
        with open(tmp_path / task / "placement_layers.csv", "w") as f:
            f.write("index,op,macs,in_elements,out_elements,kernel,stride,part,instructions\n")
            for i in range(1, 9):
                f.write(f"{i},CONV_2D,{1000 * i},{50 * i},{50 * i},1x1,1,backbone,{3 * 1000 * i + 100}\n")
                f.write(f"{i},CONV_2D,{1000 * i},{50 * i},{50 * i},1x1,1,backbone,{3 * 1000 * i + 100}\n")  # again
    got = costmodel_cmd.run(costmodel_cmd.CostModelConfig(results_dir=str(tmp_path),
                                                          tables_dir=str(tmp_path / "tables")))
    assert got["table"]["CONV_2D 1x1"]["layers"] == 16  # each task's repeat counted once
    assert {e["held_out"] for e in got["error"]} >= {"task keyword_spotting", "task visual_wake_words"}
    assert (tmp_path / "tables" / "cortex-m4_cmsis_nn.csv").exists()
    with pytest.raises(ConfigError, match="no measured layers"):
        costmodel_cmd.run(costmodel_cmd.CostModelConfig(results_dir=str(tmp_path / "none")))


def test_an_estimated_cost_says_so_and_follows_the_committed_table():
    model = trained(small_cnn)
    x = toy(16, 7)[0]
    got = api.exit_costs(api.attach_exit(model, "drop", ev_assist=False), "cortex-m4/cmsis_nn:estimate", x)
    assert got["early_exit"]["cost_source"].startswith("estimated: the instructions-per-MAC table")
    assert 0 < got["early_exit"]["minstructions"] < got["final"]["minstructions"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="the Arm toolchain and QEMU come with the set-up (install_conda_packages.sh)")
def test_measured_backbone_and_heads_add_up_to_the_baselines_own_firmware():
    model = trained(small_cnn)
    x = toy(16, 8)[0]
    heads, sources, measured = placement.probe_heads(model, ["c1", "c3"], "1x", tf.data.Dataset.from_tensor_slices(
        toy(64, 9)).batch(32), toy(32, 10), None, x, costmodel.parse("cortex-m4/cmsis_nn"), 1, None, 2, 3e-3)
    assert sources["cortex-m4/cmsis_nn"].startswith("measured") and measured
    base = api.cost_vector(model, "cortex-m4/cmsis_nn", x)[0]  # the baseline alone: one graph, one segment
    assert heads[0]["device_final"] == pytest.approx(base, rel=0.02)
    assert 0 < heads[0]["device_backbone"] < heads[1]["device_backbone"] < base and heads[0]["device_head"] > 0


def test_the_rankings_disagreement_names_each_winner_and_what_choosing_by_flops_costs():
    rows = []
    for cost, cuts in (("flops", {"a": 30.0, "b": 20.0, "c": 10.0}), ("cortex-m4/cmsis_nn", {"a": 15.0, "b": 18.0,
                                                                                           "c": 9.0})):
        rows += [{"cost": cost, "k": 1, "rule": "validation", "budget_points": 1.0, "taps": t, "widths": "1x",
                  "cut_pct": c} for t, c in cuts.items()]
    d = place.disagreement(rows, "cortex-m4/cmsis_nn")
    (w,) = d["winners"]
    assert (w["best_by_flops"], w["best_by_instructions"], w["agree"]) == ("a (1x)", "b (1x)", False)
    assert (w["best_by_flops_instruction_cut_pct"], w["best_by_instructions_flops_cut_pct"]) == (15.0, 20.0)
    assert d["single_exit_rank_correlation"] == pytest.approx(0.5) and d["disagree"] == [w]
    assert place.disagreement(rows, "flops") == {}


def test_placement_targets_are_judged_on_the_results_files(tmp_path):
    from common.reporting import placement as targets

    folder = tmp_path / "visual_wake_words/deploy/trecx2"
    rec = {"variant": "trecx2", "instruction_cut_pct": 36.0, "flops_cut_pct": 40.0, "samples": 200,
           "instruction_to_flops_cut_ratio": 0.9,
           "threshold": {"test": {"drop_points": 0.5}, "val": {"drop_points": 0.8, "flops_cut_pct": 38.0}}}
    rec |= fake_deployment(folder, variant="trecx2").stamp()  # a record of the deployment beside it
    (folder / "firmware_cortex-m4_cmsis_nn.json").write_text(json.dumps(rec))
    # test.py's summaries: x cuts more on validation (val_mflops 4 of the baseline's 10) but lands over 1 point on test
    for model, cut, drop, val_mflops in (("x", 45.0, 1.5, 4.0), ("y", 39.0, 0.9, 5.0)):
        (tmp_path / "keyword_spotting" / model).mkdir(parents=True)
        (tmp_path / "keyword_spotting" / model / "summary.json").write_text(json.dumps(summary_dict(
            [{"rho": 0.8, "test_flops_reduction_pct": cut, "test_drop_points": drop, "val_mflops": val_mflops}])))
    (tmp_path / "costmodel").mkdir()
    (tmp_path / "costmodel/cortex-m4_cmsis_nn_error.csv").write_text(
        "held_out,median_layer_error_pct,instruction_weighted_error_pct\ntask a,4.0,12.0\nrandom half 0,3.0,3.0\n")
    got = {r["target"].split(":")[0].split(" (")[0]: r for r in targets.write(tmp_path)}
    assert got["VWW best shipped"]["met"] and got["VWW instruction cut, picked within 1 point on validation"]["met"]
    kws = got["KWS test FLOPs cut at <= 1 point, model and rho picked on validation"]
    assert kws["measured"] == 45.0 and not kws["met"] and "x, picked on validation (60.0% there)" in kws["note"]
    (folder / "firmware_cortex-m4_cmsis_nn.json").write_text(json.dumps(rec | {"deployment": "another"}))
    with pytest.raises(ModelFileError, match="was measured on another deployment"):
        targets.write(tmp_path)
    assert got["cost model"]["measured"] in (4.0, 12.0)
    assert not got["placement on the examples' networks"]["met"]  # not run here
    assert (tmp_path / "placement_targets.csv").exists()
