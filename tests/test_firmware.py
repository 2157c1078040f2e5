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
                              {"early_exit": 1.0, "final": 2.0, "baseline": 1.8})
    assert rec["samples"] == len(x) and rec["bit_exact"], rec["mismatched_samples"]
    assert 0 < rec["exit_rate"] < 1  # both paths were taken on the board
    ins = rec["instructions"]
    assert 0 < ins["head"] < ins["head"] + ins["tail_when_run"] and ins["baseline"] > 0
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in rec["per_op"]["baseline"]}
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
