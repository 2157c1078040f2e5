"""The early-exit firmware on an emulated Cortex-M4 (TFLite Micro with CMSIS-NN, QEMU mps2-an386): a tiny
model's exits and classes match the Python int8 runtime sample for sample, and its errors are one line.
Needs the Arm toolchain and qemu-system-arm (the set-up installs them); the TFLM library build is cached in
$TRECX_TFLM_CACHE (default ~/.cache/trecx/tflm), so only a machine's first run pays for it."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import fake_deployment
from keras import layers

from common import api
from common.edge import board_check, ops, toolchain
from common.edge.export import to_tflite
from common.errors import ModelFileError


def _tools() -> bool:
    """Whether the Arm toolchain and QEMU are here, installing them as a first firmware build does (apt, as root)."""
    try:
        toolchain.check_tools()
    except toolchain.FirmwareError:
        return False
    return True


needs_tools = pytest.mark.skipif(not _tools(), reason="the Arm toolchain or qemu-system-arm is not installed, "
                                                      "and apt could not install them")


def tiny() -> tuple[keras.Model, keras.Model]:
    inputs = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(layers.Conv2D(16, 3, padding="same", name="conv3")(x))
    base = keras.Model(inputs, layers.Dense(5, activation="softmax", name="predictions")(x), name="tiny")
    return base, api.attach_exit(base, ["conv1", "conv2"])


@pytest.fixture(scope="module")
def graphs_and_data():
    """The int8 segments of a two-exit tiny model, its baseline graph, inputs and thresholds (about half the
    samples leave at each early exit)."""
    keras.utils.set_random_seed(0)
    base, model = tiny()
    x = np.random.default_rng(0).uniform(0, 1, (24, 12, 12, 3)).astype("float32")
    segments = api.export_int8(model, x)
    baseline = to_tflite(keras.Model(base.inputs, {"final": base.output}), x, len(x))  # outputs by name
    rhos = [float(np.median(p.max(axis=1))) for p in api.outputs(model, x)[:-1]]
    return segments, baseline, x, rhos


@needs_tools
@pytest.mark.slow
@pytest.mark.timeout(3600)  # a machine's first run builds TFLM for the Cortex-M4 twice (release, profiled: minutes)
def test_the_firmware_exits_and_classifies_as_the_python_int8_runtime(graphs_and_data, tmp_path: Path, monkeypatch):
    segments, baseline, x, rhos = graphs_and_data
    monkeypatch.setenv("TRECX_CACHE", str(tmp_path / "cache"))  # a fresh firmware cache: built and run here
    rec = api.firmware(segments, rhos, x, baseline, costs=[1.0, 1.5, 2.0], baseline_mflops=1.8)
    assert rec["samples"] == len(x) and rec["bit_exact"], rec["mismatched_samples"]
    assert all(0 < v < 1 for v in rec["exit_rates"].values())  # every segment's exit was taken on the board
    ins = rec["instructions"]
    seg = ins["per_segment_when_run"]
    assert 0 < seg["head"] < ins["early_exit_firmware"] < seg["head"] + seg["mid_1"] + seg["tail"]
    assert ins["baseline"] > 0 and rec["build"].startswith("release")
    assert set(rec["profiler_overhead_pct"]) == {"early_exit_firmware", "baseline"}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in rec["per_op"]["baseline"]}
    conv1 = rec["per_layer"]["baseline"][0]  # 12x12x8 outputs of a 3x3x3 conv
    assert conv1["op"] == "CONV_2D" and conv1["macs"] == 12 * 12 * 8 * 27 and conv1["instructions_per_mac"] > 0
    assert set(rec["per_layer"]) == {"head", "mid_1", "tail", "baseline"} and rec["costliest_layers"]
    low, high = rec["instruction_to_flops_cut_ratio_ci95"]
    assert low <= rec["instruction_to_flops_cut_ratio"] <= high
    # one arena: used bytes below what was allocated, and the RAM of both firmwares side by side
    assert 0 < rec["arena_used_bytes"]["early_exit"] <= rec["arena_bytes"]["early_exit"]
    assert rec["baseline_ram_bytes"] < rec["ram_bytes"] and rec["handover_bytes"] == 12 * 12 * 8
    assert rec["flash_bytes"] > sum(map(len, segments))

    from common.edge import board

    libs = board.libraries("cortex-m4", "cmsis_nn", profile=False)
    with pytest.raises(toolchain.FirmwareError, match="arena is too small"):
        board.record(segments, rhos, x[:2], baseline, libs, "cortex-m4", tmp_path / "small", arena_bytes=256)
    with pytest.raises(toolchain.FirmwareError, match=r"needs [\d,]+ bytes of FLASH but the board has 100,000"):
        board.record(segments, rhos, x[:2], baseline, libs, "cortex-m4", tmp_path / "big", limits=(100_000, 0))


@needs_tools
@pytest.mark.slow
def test_the_exported_sources_build_into_a_users_own_program(graphs_and_data, tmp_path: Path):
    """What docs/deployment.md tells a user: compile trecx_model.cc and trecx_runner.cc against a TFLM tree and
    call trecx::EarlyExit from their own main."""
    import subprocess

    segments, _, _, rhos = graphs_and_data
    spec = api.export_sources(segments, rhos, tmp_path / "src")
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["trecx_model.cc", "trecx_model.h",
                                                                    "trecx_runner.cc", "trecx_runner.h"]
    assert len(spec.segments) == 3 and spec.segments[-1]["features_output"] == -1
    (tmp_path / "main.cc").write_text(
        '#include "trecx_model.h"\n#include "trecx_runner.h"\n'
        "alignas(16) static uint8_t arena[trecx_model::kArenaBytes];\n"
        "static trecx::EarlyExit net(trecx_model::kModel);\n"
        "int main() { static int8_t x[trecx_model::kInputBytes];\n"
        "  if (net.Init(arena, sizeof(arena)) != kTfLiteOk) return 1;\n"
        "  const trecx::Result r = net.Run(x); return r.exit; }\n")
    from common.edge import board

    lib = board.libraries("cortex-m4", "cmsis_nn", profile=False)[False]
    inc = toolchain.includes(lib)
    for src in (tmp_path / "main.cc", tmp_path / "src" / "trecx_model.cc", tmp_path / "src" / "trecx_runner.cc"):
        r = subprocess.run(["arm-none-eabi-g++", *lib["cxx"], "-O2", *inc, f"-I{tmp_path / 'src'}", "-c", str(src),
                            "-o", str(src.with_suffix(".o"))], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]


def test_bad_graphs_and_thresholds_get_one_line_errors(graphs_and_data):
    from common.edge import board, sources
    from common.errors import ModelFileError, TrecxError

    segments, _baseline, _x, _rhos = graphs_and_data
    with pytest.raises(TrecxError, match="3 graphs have 2 early exit"):
        board.check_rhos([0.5], 3)
    with pytest.raises(TrecxError, match="2 early exits but 3 thresholds"):
        sources.spec(segments, [0.5, 0.5, 0.5])
    with pytest.raises(ModelFileError, match="segment 1 is not a full-integer int8 graph"):
        _base, model = tiny()
        sources.check_segments([segments[0], to_tflite(keras.Model(model.inputs, model.outputs))])
    with pytest.raises(ModelFileError, match="of different models"):  # the tail of another cut after the head
        sources.check_segments([segments[0], segments[2]])
    with pytest.raises(ModelFileError, match="a segment has one exit"):
        sources.check_segments([segments[0]])


def test_firmware_options_and_missing_tools_are_one_line_errors(monkeypatch):
    with pytest.raises(toolchain.FirmwareError, match="--cpu must be one of cortex-m4, cortex-m33"):
        toolchain.library(Path("."), "cortex-m7", "cmsis_nn")
    with pytest.raises(toolchain.FirmwareError, match="--kernels must be one of"):
        toolchain.library(Path("."), "cortex-m4", "helium")
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(toolchain.FirmwareError, match="apt-get install gcc-arm-none-eabi"):
        toolchain.check_tools()
    with pytest.raises(toolchain.FirmwareError, match="not a TFLite Micro checkout"):
        toolchain.tflm_source(checkout=Path("/nonexistent"))


def test_the_resolver_names_every_operator_of_the_graphs(graphs_and_data):
    segments, baseline, *_ = graphs_and_data
    calls = toolchain.resolver_calls([*segments, baseline])
    assert {"AddConv2D", "AddFullyConnected", "AddSoftmax", "AddDepthwiseConv2D"} <= set(calls)


def test_layer_macs_are_read_off_the_int8_graph(graphs_and_data):
    segments, baseline, *_ = graphs_and_data
    macs = ops.layer_macs(baseline)
    # conv1 12x12x8 of 3x3x3, conv2 6x6x16 of 3x3x8 (stride 2), conv3 6x6x16 of 3x3x16, dense 16 -> 5
    assert sorted(macs.values()) == sorted([12 * 12 * 8 * 27, 6 * 6 * 16 * 72, 6 * 6 * 16 * 144, 16 * 5])
    head = ops.layer_macs(segments[0])
    assert len(head) > 2 and all(v > 0 for v in head.values())  # the exit block's convolutions and dense


def test_the_costliest_layers_are_the_heads_excess_over_the_rate_after_the_exit():
    def layer(i, op, macs, per_mac):
        return {"index": i, "op": op, "macs": macs or None, "instructions_per_mac": per_mac,
                "instructions_per_sample": macs * (per_mac or 1.0)}

    base = [layer(0, "CONV_2D", 100, 6.0), layer(1, "DEPTHWISE_CONV_2D", 10, 8.0), layer(2, "CONV_2D", 100, 2.0),
            layer(3, "CONV_2D", 300, 2.0)]
    head = [*base[:2], layer(2, "AVERAGE_POOL_2D", 0, None)]  # the exit block starts at the third layer
    assert board_check.shared_layers(head, base) == 2
    named = board_check.costliest_layers({"head": head, "baseline": base})
    # excess over 2 instr./MAC: conv #0 400, depthwise #1 60
    assert [n.split(":")[0] for n in named] == ["CONV_2D #0", "DEPTHWISE_CONV_2D #1"] and "87%" in named[0]
    ratios = [p["ratio"] for p in board_check.by_exit_position(base)]  # the tail's instruction over MAC share
    assert np.allclose(ratios, [(880 / 1480) / (410 / 510), (800 / 1480) / (400 / 510), (600 / 1480) / (300 / 510)])


def test_the_firmware_targets_name_what_keeps_a_missed_cut_lower(tmp_path: Path):
    import csv
    import json

    from common.files import read_csv
    from common.reporting import board as table
    from common.reporting.targets import COLUMNS

    def record(task, variant, cut, flops, where="deploy", rule="certified", drop=0.5, ram=(10, 8, 4), mlperf=None,
               val=None):
        rec = {"task": task, "variant": variant, "cpu": "cortex-m4", "kernels": "cmsis_nn", "samples": 10,
               "threshold": {"rule": rule, "certified": rule != "validation", "rhos": [0.9], "budget_points": 1,
                             "delta": 0.05, "test": {"drop_points": drop}, "val": {"flops_cut_pct": val or flops}},
               "ram_bytes": ram[0], "baseline_ram_bytes": ram[1], "handover_bytes": ram[2],
               "ram_within_baseline_plus_handover": ram[0] <= ram[1] + ram[2], "baseline_mflops": 2.0,
               "subset": "all", "bit_exact": True, "exit_rate": 0.5, "flops_cut_pct": flops,
               "instruction_cut_pct": cut, "instruction_to_flops_cut_ratio": cut / flops,
               "instruction_to_flops_cut_ratio_ci95": [cut / flops - 0.01, cut / flops + 0.01],
               "instructions": {"baseline": 10.0, "early_exit_firmware": 10.0 - cut / 10},
               "instructions_per_mac": {"head": 4.0, "tail": 2.0}, "costliest_layers": ["CONV_2D #0: ..."],
               "by_exit_position": [{"after_layer": k, "op": "CONV_2D", "tail_mac_share": 0.5, "ratio": r}
                                    for k, r in enumerate((0.9, 0.85, 0.7))],
               "mlperf_tiny_published_cycles": None, "implied_cycles_per_instruction": None, "flash_bytes": 1}
        if mlperf:
            rec |= {"mlperf_int8": {"instructions": mlperf, "mflops": 2.0},
                    "baseline_vs_mlperf_int8_instructions_pct": 100 * (10.0 / mlperf - 1)}
        path = tmp_path / task / where / variant / "firmware_cortex-m4_cmsis_nn.json"
        if where == "deploy":  # a shipped deployment's record names its deploy.json
            rec |= fake_deployment(path.parent, variant=variant).stamp()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))

    record("a", "trecx", 30.0, 33.0)
    record("a", "trecx_plus", 45.0, 50.0, rule="validation")  # not certified: never the judged one
    record("b", "trecx", 20.0, 40.0, val=60.0)  # picked on validation: its larger test cuts do not count
    record("b", "trecx_plus", 25.0, 50.0, val=45.0)
    record("b", "trecx_ee3", 28.0, 31.0, where="exit_study")
    record("image_classification", "trecx2", 31.0, 35.0, drop=1.2, mlperf=10.4)  # cut met, drop over the budget
    record("keyword_spotting", "trecx_plus", 21.0, 22.0, ram=(13, 8, 4))  # RAM over the baseline's + hand-over
    table.write(tmp_path)
    got = {r["task"]: r for r in read_csv(tmp_path / table.TARGETS)}
    assert got["a"]["met"] == "True" and not got["a"]["kernels_keeping_it_lower"]
    b = got["b"]  # the larger validation cut is the one judged; the exit study's best cell beside it
    assert b["variant"] == "trecx" and b["met"] == "False" and b["kernels_keeping_it_lower"] == "CONV_2D #0: ..."
    assert b["exit_position_for_goal"].startswith("after baseline layer 1 (CONV_2D): ratio 0.85")
    assert b["exit_study_best_cell"] == "trecx_ee3" and b["ratio_ci95"] == "[0.49, 0.51]"
    assert got["a"]["variant"] == "trecx"
    assert len(read_csv(tmp_path / table.CSV)) == 6 and (tmp_path / table.FIGURE).exists()  # deployments only
    goals = {r["target"].split(":")[0]: r for r in read_csv(tmp_path / table.DEPLOY_TARGETS)}
    assert goals["image_classification trecx2"]["met"] == "False"  # 31% >= 28% but a 1.2-point drop
    assert goals["keyword_spotting best certified"]["met"] == "True"
    assert goals["keyword_spotting"]["met"] == "False" and goals["a"]["met"] == "True"  # RAM, per task
    assert "-3.8%" in goals["image_classification"]["note"] and goals["image_classification"]["met"] == "True"
    every = next(g for k, g in goals.items() if k.startswith("every firmware record byte-exact"))
    assert every["note"] == "6 of 6"
    path = tmp_path / "b" / "deploy" / "trecx" / "firmware_cortex-m4_cmsis_nn.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"deployment": "0123"}))  # of another deployment
    with pytest.raises(ModelFileError, match="was measured on another deployment"):
        table.write(tmp_path)
    for name in (table.TARGETS, table.DEPLOY_TARGETS):  # the one row shape of every targets file
        with open(tmp_path / name) as f:
            assert tuple(next(csv.reader(f))[:6]) == COLUMNS, name


def test_export_sources_over_a_folder_of_graphs_writes_the_runner_and_what_it_holds(graphs_and_data, tmp_path):
    from common.commands import export_sources

    segments, baseline, _, rhos = graphs_and_data
    api.save_graphs(segments, tmp_path / "graphs", baseline=baseline)
    rec = export_sources.main(["--graphs-dir", str(tmp_path / "graphs"), "--rhos", ",".join(map(str, rhos)),
                               "--out-dir", str(tmp_path / "out")])
    assert rec["segments"] == 3 and rec["rhos"] == rhos and rec["arena_bytes"] > 0
    header = (tmp_path / "out" / "trecx_model.h").read_text()
    assert "constexpr int kSegments = 3;" in header and f"kArenaBytes = {rec['arena_bytes']};" in header
    body = (tmp_path / "out" / "trecx_model.cc").read_text()
    t = rec["segment_specs"][0]["threshold"]  # rho in the exit's int8 units, as the runtime compares
    assert repr(t) in body and "r.AddConv2D();" in body
    from common.edge.runtime import MultiExitRuntime

    assert t == MultiExitRuntime(segments, rhos).thresholds[0]
    with pytest.raises(Exception, match="3 graphs have 2 early exit"):
        export_sources.main(["--graphs-dir", str(tmp_path / "graphs"), "--rhos", "0.5,0.5,0.5", "--out-dir",
                             str(tmp_path / "bad")])
    assert not (tmp_path / "bad" / "trecx_model.h").exists()  # nothing half-written


@needs_tools
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_firmware_command_runs_a_folder_of_a_users_graphs(graphs_and_data, tmp_path: Path, capsys):
    from common import cli
    from common.commands import firmware

    segments, baseline, x, rhos = graphs_and_data
    api.save_graphs(segments, tmp_path / "graphs", baseline=baseline)
    np.save(tmp_path / "x.npy", x[:8])
    rec = firmware.main(["--graphs-dir", str(tmp_path / "graphs"), "--rhos", ",".join(map(str, rhos)),
                         "--inputs", str(tmp_path / "x.npy"), "--profile", "false"])
    assert rec["bit_exact"] and rec["samples"] == 8 and rec["graphs"][0] == "segment_0.tflite"
    assert "MACs of the int8 graphs" in rec["flops_source"] and "per_layer" not in rec
    assert (tmp_path / "graphs" / "firmware_cortex-m4_cmsis_nn.json").exists()
    (tmp_path / "graphs" / "segment_0.tflite").write_bytes(segments[1])  # a graph cut elsewhere in the folder
    with pytest.raises(SystemExit):
        cli.run(firmware.main, ["--graphs-dir", str(tmp_path / "graphs"), "--inputs", str(tmp_path / "x.npy")])
    assert "of different models" in capsys.readouterr().err


def test_missing_tools_are_named_in_one_line_when_they_cannot_be_installed(monkeypatch):
    monkeypatch.setattr(toolchain.shutil, "which", lambda tool: None)  # no toolchain, and no apt-get either
    with pytest.raises(toolchain.FirmwareError, match=r"apt-get install gcc-arm-none-eabi .*qemu-system-arm"):
        toolchain.check_tools()
    monkeypatch.setenv("TRECX_MCU", "0")  # told not to install: the same line
    with pytest.raises(toolchain.FirmwareError, match=r"arm-none-eabi-g\+\+.* not found"):
        toolchain.check_tools()


@needs_tools
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_another_exit_signal_runs_in_the_c_runner_as_in_the_python_runtime(graphs_and_data, tmp_path: Path):
    """Every table of the C++ runner's integer score in one build: the first exit on a gate (the largest, the
    second and every score), the second on a temperature (the ratio to the largest); the board exits exactly where
    the Python int8 runtime does, and the sources hold the tables."""
    from dataclasses import dataclass

    from common.edge import board
    from common.edge.runtime import exit_probs, exit_quantization
    from common.evaluation import signals

    segments, _, x, _ = graphs_and_data
    probs = exit_probs(segments, x)
    parts = (signals.fit("gate", probs), signals.fit("temperature", probs, probs[-1].argmax(axis=1)))

    @dataclass(frozen=True)
    class Mixed(signals.Signal):  # exit k scored by parts[k]: one firmware exercises both kinds of tables
        def check_exits(self, exits: int) -> None:
            pass

        def tables(self, k, classes, scale, zero):
            return parts[k].tables(k, classes, scale, zero)

        def unit(self, s, k, classes, scale):
            return parts[k].unit(s, k, classes, scale)

    sig = Mixed("gate", parts[0].params)
    quant = exit_quantization(segments)
    rhos = [float(np.median(parts[k].scores(probs, quant)[k])) for k in range(2)]  # about half leave at each
    libs = board.libraries("cortex-m4", "cmsis_nn", profile=False)
    run = board_check.on_board(segments, rhos, x, libs, "cortex-m4", tmp_path, signal=sig)
    want = board_check.python_runtime(segments, rhos, x, sig)
    assert all(board_check.agrees(g, w) for g, w in zip(run["release"]["samples"], want, strict=True))
    assert {w["exit"] for w in want} == {0, 1, 2}  # each signal decided both ways
    text = next(tmp_path.glob("*/sources/trecx_model.cc")).read_text()
    assert "kSignal0T2" in text and "kSignal1TR" in text and "kSignal0TR" not in text


def test_a_monitor_needs_a_level_and_marks_every_prediction(graphs_and_data):
    """api.runtime with a field monitor: refused without a certified level; every prediction carries its status,
    the audited ones ran the whole network, and after the alarm every sample runs it (the full-network fallback)."""
    segments, _, x, rhos = graphs_and_data
    with pytest.raises(ValueError, match="needs a certified level"):
        api.runtime(segments, rhos, monitor=api.Monitor())
    rt = api.runtime(segments, rhos, monitor=api.Monitor(level=0.01, audit=0.5))
    stream = np.concatenate([x] * 6)
    got = [rt(r) for r in stream]
    assert {p.status for p in got} <= {"watching", "alarm", "fallback"} and got[0].status == "watching"
    alarm = rt.monitor.state.alarm_at
    assert alarm >= 0 and got[alarm].status == "alarm" and got[alarm].audited  # the random tiny model disagrees
    assert all(p.status == "fallback" and p.exit == "final" and not p.audited for p in got[alarm + 1:])
    s = rt.monitor.state
    assert s.audits == sum(p.audited for p in got) and s.samples == len(stream) and s.disagreements >= 1


def test_a_label_free_calibration_gives_the_monitor_its_level(graphs_and_data):
    from common.evaluation.calibrate import LABEL_FREE, OUTPUTS_INT8, Calibration

    segments, _, _, _ = graphs_and_data
    free = Calibration(0.5, (0.5,), {}, 0.2, 0.05, LABEL_FREE, outputs=OUTPUTS_INT8)
    assert api.runtime(segments, free, monitor=api.Monitor()).monitor.spec.level == 0.2
    labelled = Calibration(0.5, (0.5,), {}, 0.2, 0.05, "wsr", outputs=OUTPUTS_INT8)
    with pytest.raises(ValueError, match="needs a certified level"):
        api.runtime(segments, labelled, monitor=api.Monitor())


def test_the_monitor_level_and_sources_come_from_the_api(graphs_and_data, tmp_path: Path):
    from common.evaluation.monitor import LEVELS

    segments, _, x, rhos = graphs_and_data
    level = api.monitor_level(segments, x, 0.5)
    assert level is None or level in LEVELS
    with pytest.raises(ValueError, match="one shared threshold"):
        api.monitor_level(segments, x, [0.5, 0.6])
    with pytest.raises(ValueError, match="needs a certified level"):
        api.export_sources(segments, rhos, tmp_path / "none", monitor=api.Monitor())
    with pytest.raises(ValueError, match="audit fraction"):
        api.export_sources(segments, rhos, tmp_path / "none", monitor=api.Monitor(level=0.1, audit=0.0))
    api.export_sources(segments, rhos, tmp_path / "fw", monitor=api.Monitor(level=0.1))
    text = (tmp_path / "fw" / "trecx_model.cc").read_text()
    assert "kMonitorUp[5]" in text and "&kMonitor}" in text and "kMonitorFallback" not in text


@needs_tools
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_monitor_audits_bets_and_falls_back_on_the_board_as_in_the_python_runtime(graphs_and_data, tmp_path):
    """The C++ runner's monitor against the Python runtime's on one stream, sample by sample: exit, class, output
    bytes (an audited early exit hashes the rest of the network too), status, audit and the statistic's double to
    the bit; the alarm at the same sample; then the stricter fallback thresholds in force on both."""
    from common.edge import board

    segments, _, x, rhos = graphs_and_data
    stream = np.concatenate([x] * 4)
    mon = api.Monitor(level=0.02, audit=0.5, seed=3, fallback=(0.99, 0.99))
    lib = board.libraries("cortex-m4", "cmsis_nn", profile=False)[False]
    rec = board_check.monitored(segments, rhos, stream, lib, "cortex-m4", tmp_path, mon)
    assert rec["bit_exact"], rec["mismatched_samples"]
    assert 0 <= rec["alarm_sample_board"] == rec["alarm_sample_host"] < len(stream) - 10
    assert rec["counters_board"]["samples"] == len(stream) and rec["counters_board"]["disagreements"] >= 1
    assert rec["flash_bytes"] > rec["flash_bytes_without_monitor"] and rec["monitor_instructions_per_audit"] > 0
    texts = [p.read_text() for p in tmp_path.glob("*/sources/trecx_model.cc")]  # with the monitor and without
    assert sorted("&kMonitor}" in t for t in texts) == [False, True]
    assert all("kMonitorFallback[2]" in t for t in texts if "&kMonitor}" in t)
