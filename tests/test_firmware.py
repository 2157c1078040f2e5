"""The early-exit firmware on an emulated Cortex-M4 (TFLite Micro with CMSIS-NN, QEMU mps2-an386): a tiny
model's exits and classes match the Python int8 runtime sample for sample, and its errors are one line.
Needs the Arm toolchain and qemu-system-arm (the set-up installs them); the TFLM library build is cached in
$TRECX_TFLM_CACHE (default ~/.cache/trecx/tflm), so only a machine's first run pays for it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from common import api
from common.edge import mcu, mcu_check, micro
from common.edge.export import to_tflite

needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in mcu.TOOLS),
                                 reason="the Arm toolchain or qemu-system-arm is not installed")


def tiny() -> tuple[keras.Model, keras.Model]:
    inputs = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(16, 3, padding="same", name="conv3")(x))
    base = keras.Model(inputs, layers.Dense(5, activation="softmax", name="predictions")(x), name="tiny")
    return base, api.attach_exit(base, "conv1")


@pytest.fixture(scope="module")
def graphs_and_data():
    keras.utils.set_random_seed(0)
    base, model = tiny()
    x = np.random.default_rng(0).uniform(0, 1, (24, 12, 12, 3)).astype("float32")
    head, tail = api.export_int8(model, x)
    named = keras.Model(base.inputs, {"final": base.output})  # outputs by name, as every deployed graph
    graphs = {"head_int8": head, "tail_int8": tail, "baseline_int8": to_tflite(named, x, len(x))}
    from common.edge.export import TFLiteRunner

    feats = TFLiteRunner(head)(x[0])["features"]
    rows = {"head_int8": TFLiteRunner(head).quantize(x[0]), "tail_int8": TFLiteRunner(tail).quantize(feats),
            "baseline_int8": TFLiteRunner(graphs["baseline_int8"]).quantize(x[0])}
    arenas = {k: micro.arena_size(g, rows[k]) for k, g in graphs.items()}
    rho = float(np.median(api.outputs(model, x)[0].max(axis=1)))  # about half the samples exit
    return graphs, x, rho, arenas


@needs_tools
@pytest.mark.slow
@pytest.mark.timeout(3600)  # a machine's first run builds TFLM for the Cortex-M4 (minutes)
def test_the_firmware_exits_and_classifies_as_the_python_int8_runtime(graphs_and_data, tmp_path: Path):
    graphs, x, rho, arenas = graphs_and_data
    lib = mcu.library(mcu.tflm_source(), "cortex-m4", "cmsis_nn")
    program = mcu_check.program(graphs, rho, x, arenas)
    board = mcu.emulate(mcu.build(program, lib, "cortex-m4", tmp_path), "cortex-m4", timeout=600)
    rec = mcu_check.summarize(board, mcu_check.python_runtime(graphs, rho, x),
                              {"early_exit": 1.0, "final": 2.0, "baseline": 1.8}, graphs)
    assert rec["samples"] == len(x) and rec["bit_exact"], rec["mismatched_samples"]
    assert 0 < rec["exit_rate"] < 1  # both paths were taken on the board
    ins = rec["instructions"]
    assert 0 < ins["head"] < ins["head"] + ins["tail_when_run"] and ins["baseline"] > 0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in rec["per_op"]["baseline"]}
    conv1 = rec["per_layer"]["baseline"][0]  # 12x12x8 outputs of a 3x3x3 conv
    assert conv1["op"] == "CONV_2D" and conv1["macs"] == 12 * 12 * 8 * 27 and conv1["instructions_per_mac"] > 0
    assert all(0 < v for v in rec["instructions_per_mac"].values()) and rec["costliest_layers"]
    low, high = rec["instruction_to_flops_cut_ratio_ci95"]
    assert low <= rec["instruction_to_flops_cut_ratio"] <= high
    assert all(0 < rec["arena_used_bytes"][g] <= program.arenas[i] for i, g in enumerate(("head", "tail", "baseline")))
    assert mcu.memory(tmp_path / "firmware.elf")["flash_bytes"] > sum(len(g) for g in graphs.values())

    small = dataclasses.replace(mcu_check.program(graphs, rho, x[:2], arenas), arenas=(64, 64, 64))  # too small
    with pytest.raises(mcu.FirmwareError, match="arena is too small"):
        mcu.emulate(mcu.build(small, lib, "cortex-m4", tmp_path / "small"), "cortex-m4", timeout=120)


def test_firmware_options_and_missing_tools_are_one_line_errors(monkeypatch):
    with pytest.raises(mcu.FirmwareError, match="--cpu must be one of cortex-m4, cortex-m33"):
        mcu.library(Path("."), "cortex-m7", "cmsis_nn")
    with pytest.raises(mcu.FirmwareError, match="--kernels must be one of"):
        mcu.library(Path("."), "cortex-m4", "helium")
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(mcu.FirmwareError, match="apt-get install gcc-arm-none-eabi"):
        mcu.check_tools()
    with pytest.raises(mcu.FirmwareError, match="not a TFLite Micro checkout"):
        mcu.tflm_source(checkout=Path("/nonexistent"))


def test_the_resolver_names_every_operator_of_the_graphs(graphs_and_data):
    graphs, *_ = graphs_and_data
    calls = mcu.resolver_calls(list(graphs.values()))
    assert {"AddConv2D", "AddFullyConnected", "AddSoftmax", "AddDepthwiseConv2D"} <= set(calls)


def test_layer_macs_are_read_off_the_int8_graph(graphs_and_data):
    graphs, *_ = graphs_and_data
    macs = mcu_check.layer_macs(graphs["baseline_int8"])
    # conv1 12x12x8 of 3x3x3, conv2 6x6x16 of 3x3x8 (stride 2), conv3 6x6x16 of 3x3x16, dense 16 -> 5
    assert sorted(macs.values()) == sorted([12 * 12 * 8 * 27, 6 * 6 * 16 * 72, 6 * 6 * 16 * 144, 16 * 5])
    head = mcu_check.layer_macs(graphs["head_int8"])
    assert len(head) > 2 and all(v > 0 for v in head.values())  # the exit block's convolutions and dense


def test_the_costliest_layers_are_the_heads_excess_over_the_rate_after_the_exit():
    def layer(i, op, macs, per_mac):
        return {"index": i, "op": op, "macs": macs or None, "instructions_per_mac": per_mac,
                "instructions_per_sample": macs * (per_mac or 1.0)}

    base = [layer(0, "CONV_2D", 100, 6.0), layer(1, "DEPTHWISE_CONV_2D", 10, 8.0), layer(2, "CONV_2D", 100, 2.0),
            layer(3, "CONV_2D", 300, 2.0)]
    head = [*base[:2], layer(2, "AVERAGE_POOL_2D", 0, None)]  # the exit block starts at the third layer
    assert mcu_check.shared_layers(head, base) == 2
    named = mcu_check.costliest_layers({"head": head, "baseline": base})
    # excess over 2 instr./MAC: conv #0 400, depthwise #1 60
    assert [n.split(":")[0] for n in named] == ["CONV_2D #0", "DEPTHWISE_CONV_2D #1"] and "87%" in named[0]
    ratios = [p["ratio"] for p in mcu_check.by_exit_position(base)]  # the tail's instruction over MAC share
    assert np.allclose(ratios, [(880 / 1480) / (410 / 510), (800 / 1480) / (400 / 510), (600 / 1480) / (300 / 510)])


def test_the_firmware_targets_name_what_keeps_a_missed_cut_lower(tmp_path: Path):
    import json

    from common.evaluation.evaluate import read_csv
    from common.reporting import firmware as table

    def record(task, variant, cut, flops, where="deploy"):
        rec = {"task": task, "variant": variant, "cpu": "cortex-m4", "kernels": "cmsis_nn", "samples": 10,
               "subset": "all", "bit_exact": True, "exit_rate": 0.5, "flops_cut_pct": flops,
               "instruction_cut_pct": cut, "instruction_to_flops_cut_ratio": cut / flops,
               "instruction_to_flops_cut_ratio_ci95": [cut / flops - 0.01, cut / flops + 0.01],
               "instructions": {"baseline": 10.0, "early_exit_firmware": 10.0 - cut / 10},
               "instructions_per_mac": {"head": 4.0, "tail": 2.0}, "costliest_layers": ["CONV_2D #0: ..."],
               "by_exit_position": [{"after_layer": k, "op": "CONV_2D", "tail_mac_share": 0.5, "ratio": r}
                                    for k, r in enumerate((0.9, 0.85, 0.7))],
               "mlperf_tiny_published_cycles": None, "implied_cycles_per_instruction": None,
               "flash_bytes": 1, "ram_bytes": 1}
        path = tmp_path / task / where / variant / "firmware_cortex-m4_cmsis_nn.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(rec))

    record("a", "trecx", 30.0, 33.0)
    record("b", "trecx", 20.0, 40.0)
    record("b", "trecx_plus", 25.0, 50.0)
    record("b", "trecx_ee3", 28.0, 31.0, where="exit_study")
    table.write(tmp_path)
    got = {r["task"]: r for r in read_csv(tmp_path / table.TARGETS)}
    assert got["a"]["met"] == "True" and not got["a"]["kernels_keeping_it_lower"]
    b = got["b"]  # the larger instruction cut is the one judged; the exit study's best cell beside it
    assert b["variant"] == "trecx_plus" and b["met"] == "False" and b["kernels_keeping_it_lower"] == "CONV_2D #0: ..."
    assert b["exit_position_for_goal"].startswith("after baseline layer 1 (CONV_2D): ratio 0.85")
    assert b["exit_study_best_cell"] == "trecx_ee3" and b["ratio_ci95"] == "[0.49, 0.51]"
    assert len(read_csv(tmp_path / table.CSV)) == 3 and (tmp_path / table.FIGURE).exists()  # deployments only
