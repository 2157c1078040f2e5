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
from ..evaluation import signals, sweep, thresholds
from ..evaluation.evaluate import CALIBRATION, GUARANTEE_DELTA, GUARANTEE_METHOD, predict
from ..models import contract
from . import tflm
from .export import TFLiteRunner, export_segments, segment_names, to_tflite
from .runtime import MultiExitRuntime, SingleRuntime, exit_probs

DROP_POINTS = (1, 2, 3)  # the trade-offs sweep.tradeoffs reports
RULES = ("certified", "certified_per_exit", "validation")  # the rules of evaluation.thresholds deploy takes
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


def graph_outputs(graphs: dict[str, bytes], kind: str, x: np.ndarray, desc: str, backend: str = "tflm"
                  ) -> dict[str, np.ndarray]:
    """Every exit of the segment graphs and the baseline's output for every row of x (batch 1) on `backend`:
    "tflm" (int8: the kernels the firmware is checked against) or "litert" (float graphs)."""
    segs = segments_of(graphs, kind)
    rt = MultiExitRuntime(segs, [0.0] * (len(segs) - 1), backend=backend)
    base = SingleRuntime(graphs[f"baseline_{kind}"], backend=backend)
    probs = exit_probs(rt, tqdm(x, desc=desc, unit="sample", mininterval=2, disable=len(x) < 500))
    return dict(zip(rt.exits, probs, strict=True)) | {"baseline": np.stack([base(row).probs for row in x])}


def float_check(model: keras.Model, graphs: dict[str, bytes], x: np.ndarray) -> dict[str, float]:
    """Max abs difference between the Keras model and its float segment graphs, per exit."""
    want = predict(model, x)
    got = graph_outputs(graphs, "float", x, "float check", backend="litert")
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
    """Per split: accuracy of every exit (Keras float vs int8 graphs on TFLM), the int8 benefit curve (one rho
    shared by every exit; not of the calibration split, which only certifies), that curve as CSV rows, and the
    int8 outputs themselves (every exit and "baseline")."""
    names = contract.exit_names(model)
    accuracy_of, curves, rows, outputs = {}, {}, {}, {}
    for split, (x, y) in data.items():
        keras_out = predict(model, x) | {"baseline": predict(base, x)["final"]}
        int8_out = outputs[split] = graph_outputs(graphs, "int8", x, f"int8 {split} (TFLM)")
        accuracy_of[split] = {"keras_float": accuracy({k: keras_out[k] for k in int8_out}, y),
                              "int8": accuracy(int8_out, y)}
        if split == CALIBRATION:
            continue
        curves[split] = c = sweep.sweep([int8_out[e] for e in names], y, [mflops[e] for e in names])
        rows[split] = [{"rho": float(r), "accuracy": float(a), "mflops": float(m),
                        **{f"exit_rate_{e}": float(v) for e, v in zip(names[:-1], rate, strict=False)}}
                       for r, a, m, rate in zip(c["rho"], c["accuracy"], c["mflops"], c["exit_rate"], strict=True)]
    return accuracy_of, curves, rows, outputs


def choose(rule: str, outputs: dict, data: dict, costs: dict[str, float], mflops: dict[str, float], names: list[str],
           drop_points: int, delta: float = GUARANTEE_DELTA, seed: int = 0, basis: str = "flops",
           problems: tuple[str, ...] = (), signal: signals.Signal | None = None,
           quant: list[tuple[float, int]] | None = None) -> dict:
    """The thresholds to deploy by `rule` (`evaluation.thresholds`) on the int8 TFLM outputs against the int8
    baseline: "validation" reads the validation split; the certified rules read only the calibration split
    ("certified_per_exit" orders its candidates on validation); each is then measured on the test split, its
    drop with a 95% interval. `costs`: cumulative cost per exit and "baseline" on `basis` (MFLOPs or a device's
    M instructions); `rhos` None: nothing within the budget, the full network runs. `problems`: the calibration
    split's lineage problems (`data.splits.lineage`); with any, nothing is called certified, whatever the rule.
    `signal`: the exit signal thresholded (None: max softmax), scored as the device does with each early exit's
    int8 `quant` (scale, zero)."""
    thresholds.check_rule(rule)
    if rule == "label_free":
        raise TrecxError("deploy certifies against labels; --rule label_free is the API's (calibrate_exit, y=None)")
    read = "val" if rule == "validation" else CALIBRATION
    out, y = outputs[read], data[read][1]
    cum = [costs[e] for e in names]
    right = {s: outputs[s]["baseline"].argmax(axis=1) == data[s][1] for s in outputs}
    path = ([outputs["val"][e] for e in names], data["val"][1], right["val"])

    def scores(probs: list[np.ndarray]) -> list[np.ndarray] | None:
        return None if signals.other(signal) is None else signal.scores(probs, quant)

    cal = thresholds.choose(rule, [out[e] for e in names], y, cum, right[read], drop_points / 100, delta,
                            GUARANTEE_METHOD, path=path, seed=seed, confidences=scores([out[e] for e in names]))
    rhos = cal.thresholds(len(names) - 1)
    on = f"int8 outputs on TFLM of the {'validation' if read == 'val' else 'calibration'} split ({len(y)} samples)"
    certified = rule != "validation" and rhos is not None
    guarantee = ("none: " + "; ".join(problems) if certified and problems else
                 "none: nothing certified within the budget" if rule != "validation" and rhos is None else
                 thresholds.words(rule, drop_points, delta, f"the calibration split ({len(y)} samples)"
                                  if read == CALIBRATION else "the validation split", "int8 outputs on TFLM",
                                  "the int8 baseline"))
    rec = {"rule": rule, "budget_points": drop_points, "against": "the int8 baseline", "cost_basis": basis,
           "chosen_on": on, "certified": certified and not problems, "rhos": rhos, "guarantee": guarantee,
           "method": None if rule == "validation" else cal.method, "delta": None if rule == "validation" else delta,
           "certified_on": None if rule == "validation" else cal.samples,
           "note": "" if rhos is not None else "nothing within the budget: no early exit fires, the full network runs"}
    run = np.array([float("inf") if rhos is None else r for r in (rhos or [None] * (len(names) - 1))])
    for split in (s for s in ("val", CALIBRATION, "test") if s in outputs):
        probs, ys = [outputs[split][e] for e in names], data[split][1]
        conf = scores(probs)
        taken = (sweep.vector_exits(probs, run[None, :]) if conf is None else
                 sweep.first_passing(np.stack(conf), run[None, :]))[0]
        pred = np.stack([p.argmax(axis=1) for p in probs])[taken, np.arange(len(ys))]
        loss = right[split].astype(np.float64) - (pred == ys)
        cost = float(np.asarray(cum)[taken].mean())
        flops = float(np.asarray([mflops[e] for e in names])[taken].mean())
        rec[split] = {"accuracy": float((pred == ys).mean()), "baseline_accuracy": float(right[split].mean()),
                      "drop_points": 100 * float(loss.mean()),
                      "drop_points_ci95": [100 * v for v in thresholds.paired_interval(loss, seed=seed)],
                      "cost": cost, "cost_cut_pct": 100 * (1 - cost / costs["baseline"]),
                      "mflops": flops, "flops_cut_pct": 100 * (1 - flops / mflops["baseline"]),
                      "exit_rates": [float((taken == i).mean()) for i in range(len(names))]}
    return rec
