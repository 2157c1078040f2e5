"""The int8 deployment of an early-exit model split at its k exits: the k + 1 segment graphs and the baseline's,
their checks against Keras and between interpreters, the int8 accuracy and benefit curves, and the thresholds to
deploy, certified on the int8 outputs that will run (the `deploy` command writes them; `benchmark` and
`firmware` read the graphs back).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from .. import files
from ..errors import ModelFileError, TrecxError
from ..evaluation import calibrate, sweep
from ..evaluation.evaluate import GUARANTEE_DELTA, GUARANTEE_METHOD, predict
from ..models import contract
from . import tflm
from .export import TFLiteRunner, export_segments, segment_names, to_tflite
from .runtime import MultiExitRuntime

DROP_POINTS = (1, 2, 3)  # the trade-offs sweep.tradeoffs reports
RULES = ("certified", "certified_per_exit", "validation")  # how the deployed thresholds are chosen (docs)
log = logging.getLogger("trecx.deploy")


def graph_file(variant: str, name: str) -> str:
    """File of a graph: head_int8 -> trecx_head.int8.tflite, mid_1_int8 -> trecx_mid_1.int8.tflite,
    baseline_float -> baseline.float.tflite."""
    part, kind = name.rsplit("_", 1)
    return f"{part}.{kind}.tflite" if part == "baseline" else f"{variant}_{part}.{kind}.tflite"


def read_graphs(out: Path, variant: str, segments: list[str], kinds: tuple[str, ...] = ("float", "int8")
                ) -> dict[str, bytes]:
    """The graphs of `kinds` that deploy wrote, for the `segments` its deploy.json names (git keeps only the
    int8 ones: a clone can benchmark and build the firmware)."""
    names = [f"{p}_{k}" for p in (*segments, "baseline") for k in kinds]
    missing = [graph_file(variant, n) for n in names if not (out / graph_file(variant, n)).exists()]
    if missing:
        raise ModelFileError(f"{out} lacks {', '.join(missing)}: run python -m common deploy first")
    return {n: files.read_tflite(out / graph_file(variant, n)) for n in names}


def segments_of(graphs: dict[str, bytes], kind: str = "int8") -> list[bytes]:
    """The segment graphs of `kind` in order (head, mid_1.., tail)."""
    names = [n.rsplit("_", 1)[0] for n in graphs if n.endswith(f"_{kind}") and not n.startswith("baseline")]
    return [graphs[f"{n}_{kind}"] for n in segment_names(len(names) - 1)]


def export_graphs(model: keras.Model, base: keras.Model, calib: np.ndarray, pooling: str = "mean"
                  ) -> dict[str, bytes]:
    """Float and int8 graphs of every segment and of the baseline (global pooling lowered by `pooling`, see
    `export.to_tflite`); each segment is calibrated on what it reads from the same training samples (the
    previous segment's feature maps)."""
    names = segment_names(len(contract.exit_names(model)) - 1)
    graphs = {f"{name}_{kind}": g for kind, x in (("float", None), ("int8", calib))
              for name, g in zip(names, export_segments(model, x, pooling), strict=True)}
    return graphs | {"baseline_float": to_tflite(base, pooling=pooling),
                     "baseline_int8": to_tflite(base, calib, len(calib), pooling)}


def graph_outputs(graphs: dict[str, bytes], kind: str, x: np.ndarray, desc: str) -> dict[str, np.ndarray]:
    """Every exit of the segment graphs and the baseline's output for every row of x (batch 1)."""
    segs = segments_of(graphs, kind)
    rt = MultiExitRuntime(segs, [0.0] * (len(segs) - 1))
    base = TFLiteRunner(graphs[f"baseline_{kind}"])
    probs = rt.outputs(tqdm(x, desc=desc, unit="sample", mininterval=2, disable=len(x) < 500))
    return dict(zip(rt.exits, probs, strict=True)) | {"baseline": np.stack([base(row)["final"] for row in x])}


def float_check(model: keras.Model, graphs: dict[str, bytes], x: np.ndarray) -> dict[str, float]:
    """Max abs difference between the Keras model and its float segment graphs, per exit."""
    want = predict(model, x)
    got = graph_outputs(graphs, "float", x, "float check")
    return {k: float(np.abs(got[k] - want[k]).max()) for k in contract.exit_names(model)}


def tflm_check(graphs: dict[str, bytes], x: np.ndarray) -> dict:
    """Tensor-arena size of every int8 graph under tflite-micro, and how far TFLM's raw int8 outputs are from
    LiteRT's on the rows of x (in quantization steps); each segment reads the previous one's LiteRT map."""
    out: dict = {"arena_bytes": {}, "max_lsb_diff_vs_litert": {}}
    segs = segments_of(graphs)
    names = segment_names(len(segs) - 1)
    inputs = {names[0]: list(x), "baseline": list(x)}
    for prev, name in itertools.pairwise(names):
        r = TFLiteRunner(graphs[f"{prev}_int8"])
        inputs[name] = [r(v)["features"] for v in inputs[prev]]
    for name in (*names, "baseline"):
        runner = TFLiteRunner(graphs[f"{name}_int8"])
        rows = [runner.quantize(r) for r in inputs[name]]
        out["arena_bytes"][f"{name}_int8"] = tflm.arena_size(graphs[f"{name}_int8"], rows[0])
        micro, diff = tflm.MicroRunner(graphs[f"{name}_int8"]), 0
        for r in rows:  # the same raw outputs by name from both interpreters
            ref, got = runner.raw(r), micro.raw(r)
            diff = max(diff, *(int(np.abs(got[k].astype(np.int32) - ref[k].astype(np.int32)).max()) for k in ref))
        out["max_lsb_diff_vs_litert"][f"{name}_int8"] = diff
    return out


def accuracy(outputs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    return {k: float((v.argmax(1) == y).mean()) for k, v in outputs.items()}


def evaluate_int8(model: keras.Model, base: keras.Model, graphs: dict[str, bytes], data: dict,
                  mflops: dict[str, float]) -> tuple[dict, dict, dict[str, list[dict]], dict]:
    """Per split: accuracy of every exit (Keras float vs int8 graphs), the int8 benefit curve (one rho shared by
    every exit), that curve as CSV rows, and the int8 outputs themselves (every exit and "baseline")."""
    names = contract.exit_names(model)
    accuracy_of, curves, rows, outputs = {}, {}, {}, {}
    for split, (x, y) in data.items():
        keras_out = predict(model, x) | {"baseline": predict(base, x)["final"]}
        int8_out = outputs[split] = graph_outputs(graphs, "int8", x, f"int8 {split}")
        accuracy_of[split] = {"keras_float": accuracy({k: keras_out[k] for k in int8_out}, y),
                              "int8": accuracy(int8_out, y)}
        curves[split] = sweep.sweep([int8_out[e] for e in names], y, [mflops[e] for e in names])
        c = curves[split]
        rows[split] = [{"rho": float(r), "accuracy": float(a), "mflops": float(m),
                        **{f"exit_rate_{e}": float(v) for e, v in zip(names[:-1], rate, strict=False)}}
                       for r, a, m, rate in zip(c["rho"], c["accuracy"], c["mflops"], c["exit_rate"], strict=True)]
    return accuracy_of, curves, rows, outputs


def choose(rule: str, outputs: dict, data: dict, mflops: dict[str, float], names: list[str], drop_points: int,
           delta: float = GUARANTEE_DELTA, seed: int = 0) -> dict:
    """The thresholds to deploy by `rule`, from the int8 validation outputs against the int8 baseline, with what
    they give on the int8 test outputs: "certified" (Learn-then-Test, one rho for every exit, on every validation
    sample), "certified_per_exit" (a threshold per exit: a path chosen on half the validation samples, tested on
    the other half; docs/calibration.md) or "validation" (the cheapest rho within the budget on validation: no
    guarantee). `rhos` None: nothing certified, the full network runs."""
    if rule not in RULES:
        raise TrecxError(f"--rule must be one of {', '.join(RULES)}, got '{rule}'")
    (_, y_val), (_, y_test) = data["val"], data["test"]
    cum = [mflops[e] for e in names]
    val = [outputs["val"][e] for e in names]
    right = outputs["val"]["baseline"].argmax(axis=1) == y_val
    rec = {"rule": rule, "budget_points": drop_points, "against": "the int8 baseline",
           "chosen_on": f"int8 outputs of the validation split ({len(y_val)} samples)"}
    if rule == "validation":
        rho = calibrate.naive_rho(val, y_val, cum, right, drop_points / 100)
        rhos = None if rho is None else [rho] * (len(names) - 1)
        rec |= {"guarantee": "none: the cheapest rho within the budget on validation, which lands over it on unseen "
                             "data about half the time (docs/calibration.md)", "method": None, "delta": None}
    else:
        if rule == "certified":
            cal = calibrate.calibrate(val, y_val, cum, right, drop_points / 100, delta, GUARANTEE_METHOD, seed=seed)
        else:
            if len(names) < 3:
                raise TrecxError("--rule certified_per_exit needs a model with two or more early exits; use certified")
            cal = calibrate.calibrate_per_exit(val, y_val, cum, right, drop_points / 100, delta, GUARANTEE_METHOD,
                                               seed=seed)
        rhos = cal.thresholds(len(names) - 1)
        rec |= {"guarantee": f"P(int8 test drop > {drop_points} point(s)) <= {delta}", "method": cal.method,
                "delta": delta, "certified_on": cal.samples}
    rec |= {"certified": rule != "validation" and rhos is not None, "rhos": rhos,
            "note": "" if rhos is not None else "nothing within the budget: no early exit fires, the full network runs"}
    run = [float("inf") if rhos is None else r for r in (rhos or [None] * (len(names) - 1))]
    base_acc = {s: float((outputs[s]["baseline"].argmax(axis=1) == y).mean()) for s, y in
                (("val", y_val), ("test", y_test))}
    for split, y in (("val", y_val), ("test", y_test)):
        c = sweep.vector_sweep([outputs[split][e] for e in names], y, cum, np.array(run))
        rec[split] = {"accuracy": float(c["accuracy"][0]), "drop_points": 100 * (base_acc[split] - c["accuracy"][0]),
                      "mflops": float(c["mflops"][0]), "flops_cut_pct": 100 * (1 - c["mflops"][0] / mflops["baseline"]),
                      "exit_rates": [float(v) for v in c["exit_rate"][0]], "baseline_accuracy": base_acc[split]}
    return rec
