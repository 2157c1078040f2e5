"""Deploy a task's early-exit model as int8 graphs split at the exit: python -m common.deploy --task TASK

Writes results/<task>/deploy/<variant>/: the head and tail of the early-exit model and the baseline, each as
float32 and full-integer int8 .tflite (calibrated on training samples only), and deploy.json:
- the float split graphs against the Keras model (max abs difference of every exit);
- the accuracy of every exit, Keras float vs int8 graphs, on the validation and test splits;
- sizes (flash) and tflite-micro tensor-arena sizes (RAM), and TFLM vs LiteRT agreement;
- the rho to deploy: chosen on the int8 *validation* outputs for each 1/2/3-point trade-off
  against the int8 baseline, with what it gives on the test split.
`python -m common.benchmark --task TASK` then measures latency with these files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from common import files, paths, tasks
from common.config import parse, save_run_info
from common.edge import micro
from common.edge.export import TFLiteRunner, split_at_exit, to_tflite
from common.edge.runtime import EarlyExitRuntime
from common.errors import ConfigError, ModelFileError, TrecxError
from common.evaluation import sweep
from common.evaluation.evaluate import predict, write_csv
from common.models import flops

DROP_POINTS = (1, 2, 3)  # the trade-offs sweep.tradeoffs reports
log = logging.getLogger("trecx.deploy")


@dataclass
class DeployConfig:
    """Options of common.deploy and common.benchmark."""

    task: str = "keyword_spotting"  # image_classification, keyword_spotting or visual_wake_words
    variant: str = "trecx"  # the early-exit model: <models_dir>/<variant>.keras
    models_dir: str = ""  # "" = pretrained/<task>
    out_dir: str = ""  # "" = results/<task>/deploy/<variant>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    calibration: int = 300  # training samples that calibrate int8
    drop_points: int = 1  # deploy the rho of this trade-off (1, 2 or 3 points below the baseline)
    check_samples: int = 100  # test samples on which the float graphs are compared with Keras
    repeats: int = 3  # benchmark: passes over the test samples (each sample's fastest run counts)
    samples: int = 1000  # benchmark: test samples timed (0 = all)
    num_threads: int = 1  # benchmark: interpreter threads (1, as on a microcontroller)


def out_dir(cfg: DeployConfig) -> Path:
    return Path(cfg.out_dir or paths.results_dir() / cfg.task / "deploy" / cfg.variant)


def load_models(cfg: DeployConfig, task: tasks.Task) -> tuple[keras.Model, keras.Model]:
    """(early-exit model, baseline): the baseline is the one the task's trade-offs are measured against."""
    models_dir = Path(cfg.models_dir or paths.pretrained_dir(cfg.task))
    path = models_dir / f"{cfg.variant}.keras"
    if not path.exists():
        raise ModelFileError(f"{path} not found: train it with python -m {cfg.task}.train --variant "
                             f"{cfg.variant} --publish true, or pass --models-dir")
    model = files.load_model(path)
    if task.baseline == "mlperf_reference":
        return model, task.reference()
    base = models_dir / f"{task.baseline}.keras"
    if not base.exists():
        raise ModelFileError(f"{base} not found: the baseline of {cfg.task} (train --variant {task.baseline})")
    return model, files.load_model(base)


def graph_file(variant: str, name: str) -> str:
    """File of a graph: head_int8 -> trecx_head.int8.tflite, baseline_float -> baseline.float.tflite."""
    part, kind = name.split("_")
    return f"{part}.{kind}.tflite" if part == "baseline" else f"{variant}_{part}.{kind}.tflite"


def read_graphs(out: Path, variant: str, kinds: tuple[str, ...] = ("float", "int8")) -> dict[str, bytes]:
    """The graphs of `kinds` that main() wrote (git keeps only the int8 ones: a clone can benchmark)."""
    names = [f"{p}_{k}" for p in ("head", "tail", "baseline") for k in kinds]
    missing = [graph_file(variant, n) for n in names if not (out / graph_file(variant, n)).exists()]
    if missing:
        raise ModelFileError(f"{out} lacks {', '.join(missing)}: run python -m common.deploy first")
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
                  mflops: dict[str, float]) -> tuple[dict, dict, dict[str, list[dict]]]:
    """Per split: accuracy of every exit (Keras float vs int8 graphs), the int8 benefit curve, and
    that curve as CSV rows."""
    accuracy_of, curves, rows = {}, {}, {}
    for split, (x, y) in data.items():
        keras_out = predict(model, x) | {"baseline": predict(base, x)["final"]}
        int8_out = graph_outputs(graphs, "int8", x, f"int8 {split}")
        accuracy_of[split] = {"keras_float": accuracy(keras_out, y), "int8": accuracy(int8_out, y)}
        curves[split] = sweep.sweep([int8_out["early_exit"], int8_out["final"]], y,
                                    [mflops["early_exit"], mflops["final"]])
        c = curves[split]
        rows[split] = [{"rho": float(r), "accuracy": float(a), "mflops": float(m), "exit_rate_early": float(e[0])}
                       for r, a, m, e in zip(c["rho"], c["accuracy"], c["mflops"], c["exit_rate"], strict=True)]
    return accuracy_of, curves, rows


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


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(DeployConfig, {"default": DeployConfig()}, argv, description=__doc__)
    if cfg.drop_points not in DROP_POINTS:
        raise ConfigError(f"--drop-points must be one of {', '.join(map(str, DROP_POINTS))}, got {cfg.drop_points}")
    task = tasks.get(cfg.task)
    out = out_dir(cfg)
    model, base = load_models(cfg, task)
    loaded = task.load(cfg.data_dir, cfg.split_seed)  # deploy.json records the split; results/<task>/ its files
    data, info, calib = loaded.splits, loaded.info, loaded.calibration(cfg.calibration)
    log.info("%s/%s: converting, int8 calibrated on %d training samples", cfg.task, cfg.variant, len(calib))
    graphs = export_graphs(model, base, calib)
    x_test = data["test"][0]
    rec: dict = {"task": cfg.task, "variant": cfg.variant, "baseline": task.baseline,
                 "calibration": f"{len(calib)} random samples of the training split", "data": info,
                 "size_bytes": {k: len(v) for k, v in graphs.items()},
                 "flash_bytes_int8": {cfg.variant: len(graphs["head_int8"]) + len(graphs["tail_int8"]),
                                      "baseline": len(graphs["baseline_int8"])},
                 "float_split_max_abs_diff": float_check(model, graphs, x_test[:cfg.check_samples])}
    rec |= tflm_check(graphs, x_test[:5])
    costs = flops.exit_costs(model)
    rec["mflops"] = {"early_exit": costs["early_exit"]["mflops"], "final": costs["final"]["mflops"],
                     "baseline": flops.exit_costs(base)["final"]["mflops"]}
    acc, curves, curve_rows = evaluate_int8(model, base, graphs, data, rec["mflops"])
    rec["accuracy"] = acc
    rec["int8_minus_float_points_test"] = {k: 100 * (acc["test"]["int8"][k] - acc["test"]["keras_float"][k])
                                           for k in acc["test"]["int8"]}
    rec["tradeoffs_int8"] = sweep.tradeoffs(curves["val"], curves["test"], acc["val"]["int8"]["baseline"],
                                            acc["test"]["int8"]["baseline"], rec["mflops"]["baseline"])
    chosen = choose_rho(rec["tradeoffs_int8"], cfg.drop_points)
    rec["rho"], rec["drop_points"] = chosen["rho"], chosen["drop_points"]
    # Only now, with every check passed, are the files (tracked ones among them) replaced, each whole.
    for name, content in graphs.items():
        with files.atomic(out / graph_file(cfg.variant, name)) as tmp:
            tmp.write_bytes(content)
    for split, rows in curve_rows.items():
        write_csv(out / f"benefit_curve_int8_{split}.csv", rows)
    files.write_json(out / "deploy.json", rec)
    save_run_info(out, cfg)
    log.info("%s: float split max diff %s; int8 test accuracy %s; rho %s (%d-point trade-off on int8 validation); "
             "arena %s", out, rec["float_split_max_abs_diff"], acc["test"]["int8"], rec["rho"], rec["drop_points"],
             rec["arena_bytes"])
    return rec


if __name__ == "__main__":
    from common import cli

    cli.run(main)
