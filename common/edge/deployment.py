"""The int8 deployment of an early-exit model split at its exit: the graphs, their checks against Keras
and between interpreters, the int8 accuracy and benefit curves, and the rho to deploy (the `deploy`
command writes them; `benchmark` reads the graphs back).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from common import files
from common.edge import micro
from common.edge.export import TFLiteRunner, split_at_exit, to_tflite
from common.edge.runtime import EarlyExitRuntime
from common.errors import ModelFileError, TrecxError
from common.evaluation import sweep
from common.evaluation.evaluate import predict

DROP_POINTS = (1, 2, 3)  # the trade-offs sweep.tradeoffs reports
log = logging.getLogger("trecx.deploy")


def graph_file(variant: str, name: str) -> str:
    """File of a graph: head_int8 -> trecx_head.int8.tflite, baseline_float -> baseline.float.tflite."""
    part, kind = name.split("_")
    return f"{part}.{kind}.tflite" if part == "baseline" else f"{variant}_{part}.{kind}.tflite"


def read_graphs(out: Path, variant: str, kinds: tuple[str, ...] = ("float", "int8")) -> dict[str, bytes]:
    """The graphs of `kinds` that main() wrote (git keeps only the int8 ones: a clone can benchmark)."""
    names = [f"{p}_{k}" for p in ("head", "tail", "baseline") for k in kinds]
    missing = [graph_file(variant, n) for n in names if not (out / graph_file(variant, n)).exists()]
    if missing:
        raise ModelFileError(f"{out} lacks {', '.join(missing)}: run python -m common deploy first")
    return {n: files.read_tflite(out / graph_file(variant, n)) for n in names}


def export_graphs(model: keras.Model, base: keras.Model, calib: np.ndarray) -> dict[str, bytes]:
    """Float and int8 graphs of the head, the tail and the baseline; the tail is calibrated on the
    head's feature maps of the same training samples."""
    head, tail = split_at_exit(model)
    feats = predict(head, calib)["features"]
    n = len(calib)
    return {"head_float": to_tflite(head), "tail_float": to_tflite(tail), "baseline_float": to_tflite(base),
            "head_int8": to_tflite(head, calib, n), "tail_int8": to_tflite(tail, feats, n),
            "baseline_int8": to_tflite(base, calib, n)}


def graph_outputs(graphs: dict[str, bytes], kind: str, x: np.ndarray, desc: str) -> dict[str, np.ndarray]:
    """Both exits of the split graphs and the baseline's output for every row of x (batch 1)."""
    rt = EarlyExitRuntime(graphs[f"head_{kind}"], graphs[f"tail_{kind}"], rho=0.0)
    base = TFLiteRunner(graphs[f"baseline_{kind}"])
    out: dict[str, list] = {"early_exit": [], "final": [], "baseline": []}
    for row in tqdm(x, desc=desc, unit="sample", mininterval=2, disable=len(x) < 500):
        early, final = rt.both(row)
        out["early_exit"].append(early), out["final"].append(final)
        out["baseline"].append(base(row)["final"])
    return {k: np.stack(v) for k, v in out.items()}


def float_check(model: keras.Model, graphs: dict[str, bytes], x: np.ndarray) -> dict[str, float]:
    """Max abs difference between the Keras model and its float split graphs, per exit."""
    want = predict(model, x)
    got = graph_outputs(graphs, "float", x, "float check")
    return {k: float(np.abs(got[k] - want[k]).max()) for k in ("early_exit", "final")}


def tflm_check(graphs: dict[str, bytes], x: np.ndarray) -> dict:
    """Tensor-arena size of every int8 graph under tflite-micro, and how far TFLM's raw int8
    outputs are from LiteRT's on the rows of x (in quantization steps)."""
    out: dict = {"arena_bytes": {}, "max_lsb_diff_vs_litert": {}}
    for name in ("head_int8", "tail_int8", "baseline_int8"):
        runner = TFLiteRunner(graphs[name])
        if name == "tail_int8":  # the tail's inputs are the head's feature maps
            head = TFLiteRunner(graphs["head_int8"])
            rows = [runner.quantize(head(r)["features"]) for r in x]
        else:
            rows = [runner.quantize(r) for r in x]
        out["arena_bytes"][name] = micro.arena_size(graphs[name], rows[0])
        tflm, diff = micro.MicroRunner(graphs[name]), 0
        for r in rows:  # the same raw outputs by name from both interpreters
            ref, got = runner.raw(r), tflm.raw(r)
            diff = max(diff, *(int(np.abs(got[k].astype(np.int32) - ref[k].astype(np.int32)).max()) for k in ref))
        out["max_lsb_diff_vs_litert"][name] = diff
    return out


def accuracy(outputs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    return {k: float((v.argmax(1) == y).mean()) for k, v in outputs.items()}


def evaluate_int8(model: keras.Model, base: keras.Model, graphs: dict[str, bytes], data: dict,
                  mflops: dict[str, float]) -> tuple[dict, dict, dict[str, list[dict]], dict]:
    """Per split: accuracy of every exit (Keras float vs int8 graphs), the int8 benefit curve, that curve
    as CSV rows, and the int8 outputs themselves ({"early_exit", "final", "baseline"} probabilities)."""
    accuracy_of, curves, rows, outputs = {}, {}, {}, {}
    for split, (x, y) in data.items():
        keras_out = predict(model, x) | {"baseline": predict(base, x)["final"]}
        int8_out = outputs[split] = graph_outputs(graphs, "int8", x, f"int8 {split}")
        accuracy_of[split] = {"keras_float": accuracy(keras_out, y), "int8": accuracy(int8_out, y)}
        curves[split] = sweep.sweep([int8_out["early_exit"], int8_out["final"]], y,
                                    [mflops["early_exit"], mflops["final"]])
        c = curves[split]
        rows[split] = [{"rho": float(r), "accuracy": float(a), "mflops": float(m), "exit_rate_early": float(e[0])}
                       for r, a, m, e in zip(c["rho"], c["accuracy"], c["mflops"], c["exit_rate"], strict=True)]
    return accuracy_of, curves, rows, outputs


def certified_rho(outputs: dict, data: dict, curves: dict, mflops: dict[str, float], drop_points: int) -> dict:
    """The rho Learn-then-Test certifies on the int8 validation outputs for `drop_points` against the int8
    baseline (`evaluation.evaluate.guaranteed`, as every test run does on the float outputs), with what it
    gives on the int8 test outputs."""
    from common.evaluation.evaluate import GUARANTEE_DELTA, GUARANTEE_METHOD, guaranteed

    exits = ["early_exit", "final"]
    split_outputs = {s: {e: outputs[s][e] for e in exits} | {"labels": y} for s, (_, y) in data.items()}
    right = {s: outputs[s]["baseline"].argmax(axis=1) == y for s, (_, y) in data.items()}
    base_test = float(right["test"].mean())
    row = guaranteed(split_outputs, exits, [mflops[e] for e in exits], curves,
                     {"test_accuracy": base_test, "mflops": mflops["baseline"]}, right, drops=(drop_points,))[0]
    return {"drop_points": drop_points, "rho": row["rho"], "method": GUARANTEE_METHOD, "delta": GUARANTEE_DELTA,
            **{k: row[k] for k in ("test_accuracy", "test_mflops", "test_flops_reduction_pct")}}


def choose_rho(tradeoffs: list[dict], drop_points: int) -> dict:
    """The asked trade-off, else the tightest looser one that any rho reaches on validation."""
    usable = [t for t in tradeoffs if t["rho"] is not None and t["drop_points"] >= drop_points]
    if not usable:
        raise TrecxError(f"no rho keeps the int8 validation accuracy within {max(DROP_POINTS)} points of the "
                         f"baseline (asked: --drop-points {drop_points}): the int8 early exit is too weak to deploy")
    if usable[0]["drop_points"] != drop_points:
        log.warning("no rho within %d point(s) on int8 validation; deploying the %d-point trade-off",
                    drop_points, usable[0]["drop_points"])
    return usable[0]
