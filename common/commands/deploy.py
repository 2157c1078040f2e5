"""Deploy a task's early-exit model as int8 graphs split at the exit: python -m common deploy --task TASK

Writes results/<task>/deploy/<variant>/: the head and tail of the early-exit model and the baseline, each as
float32 and full-integer int8 .tflite (calibrated on training samples only), and deploy.json:
- the float split graphs against the Keras model (max abs difference of every exit);
- the accuracy of every exit, Keras float vs int8 graphs, on the validation and test splits;
- sizes (flash) and tflite-micro tensor-arena sizes (RAM), and TFLM vs LiteRT agreement;
- the rho to deploy: chosen on the int8 *validation* outputs for each 1/2/3-point trade-off
  against the int8 baseline, with what it gives on the test split.
`python -m common benchmark --task TASK` then measures latency with these files (`edge.deployment` holds
the steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from common import files, paths, tasks
from common.config import parse, save_run_info
from common.edge.deployment import (
    DROP_POINTS,
    certified_rho,
    choose_rho,
    evaluate_int8,
    export_graphs,
    float_check,
    graph_file,
    tflm_check,
)
from common.errors import ConfigError, ModelFileError
from common.evaluation import sweep
from common.evaluation.evaluate import write_csv
from common.models import flops

log = logging.getLogger("trecx.deploy")


@dataclass
class DeployConfig:
    """Options of `python -m common deploy` and `benchmark`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
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


def run(cfg: DeployConfig) -> dict:
    """Export, check and write the graphs and deploy.json; returns its record."""
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
    acc, curves, curve_rows, int8_outputs = evaluate_int8(model, base, graphs, data, rec["mflops"])
    rec["accuracy"] = acc
    rec["int8_minus_float_points_test"] = {k: 100 * (acc["test"]["int8"][k] - acc["test"]["keras_float"][k])
                                           for k in acc["test"]["int8"]}
    rec["tradeoffs_int8"] = sweep.tradeoffs(curves["val"], curves["test"], acc["val"]["int8"]["baseline"],
                                            acc["test"]["int8"]["baseline"], rec["mflops"]["baseline"])
    chosen = choose_rho(rec["tradeoffs_int8"], cfg.drop_points)
    # beside the deployed (validation-chosen) rho: the one certified on the int8 validation outputs
    rec["certified_int8"] = certified_rho(int8_outputs, data, curves, rec["mflops"], cfg.drop_points)
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


def main(argv: list[str] | None = None) -> dict:
    return run(parse(DeployConfig, None, argv, description=__doc__, required=("task",)))
