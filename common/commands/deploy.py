"""Deploy a task's early-exit model as int8 graphs split at its exits: python -m common deploy --task TASK

Writes results/<task>/deploy/<variant>/: the k + 1 segments of a k-exit model (head, mid_1.., tail) and the
baseline, each as float32 and full-integer int8 .tflite (calibrated on training samples only), and deploy.json:
- the float segment graphs against the Keras model (max abs difference of every exit);
- the accuracy of every exit, Keras float vs int8 graphs, on the validation and test splits;
- sizes (flash) and tflite-micro tensor-arena sizes (RAM), and TFLM vs LiteRT agreement;
- the thresholds to deploy (`threshold`), by `--rule`: by default one rho certified by Learn-then-Test on the
  int8 *validation* outputs to keep the drop against the int8 baseline within `--drop-points` with probability
  >= 1 - delta; `certified_per_exit` a certified threshold per exit; `validation` the rho chosen on validation,
  without a guarantee (labelled so in every record); each with what it gives on the int8 test split. Every rule
  applicable to the model is recorded beside it (`thresholds_by_rule`).
`python -m common benchmark` and `python -m common firmware` then run these files at the deployed thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from .. import files, paths, tasks
from ..config import parse, save_run_info
from ..edge.deployment import (
    DROP_POINTS,
    RULES,
    choose,
    evaluate_int8,
    export_graphs,
    float_check,
    graph_file,
    segments_of,
    tflm_check,
)
from ..edge.export import POOLINGS, segment_names
from ..errors import ConfigError, ModelFileError
from ..evaluation import calibrate, sweep
from ..evaluation.evaluate import GUARANTEE_DELTA, GUARANTEE_METHOD
from ..files import write_csv
from ..models import contract, flops, registry
from ..models.contract import load_model

log = logging.getLogger("trecx.deploy")


@dataclass
class DeployConfig:
    """Options of `python -m common deploy` and `benchmark`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    variant: str = tasks.DEPLOYED  # the early-exit model: <models_dir>/<variant>.keras
    models_dir: str = ""  # "" = pretrained/<task>
    out_dir: str = ""  # "" = results/<task>/deploy/<variant>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    calibration: int = 300  # training samples that calibrate int8
    drop_points: int = 0  # the budget, points below the int8 baseline (1, 2 or 3; 0 = the smallest of these that
    #                       the validation split's size can certify at all: calibrate.min_budget, n alone)
    pooling: str = "mean"  # global average pooling as MEAN (the converter's) or average_pool (CMSIS-NN's, MLPerf's)
    rule: str = "certified"  # certified (one rho), certified_per_exit (k >= 2 exits) or validation (no guarantee)
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
    return load_model(path), registry.baseline_model(task, models_dir)


def run(cfg: DeployConfig) -> dict:
    """Export, check and write the graphs and deploy.json; returns its record."""
    if cfg.drop_points not in (0, *DROP_POINTS):
        raise ConfigError(f"--drop-points must be one of 0 (auto), {', '.join(map(str, DROP_POINTS))}, got "
                          f"{cfg.drop_points}")
    if cfg.rule not in RULES:
        raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got '{cfg.rule}'")
    if cfg.pooling not in POOLINGS:
        raise ConfigError(f"--pooling must be one of {', '.join(POOLINGS)}, got '{cfg.pooling}'")
    task = tasks.get(cfg.task)
    out = out_dir(cfg)
    model, base = load_models(cfg, task)
    names = contract.exit_names(model)
    if len(names) < 2:
        raise ModelFileError(f"{cfg.variant} of {cfg.task} has no early exit (outputs: {', '.join(names)}): deploy "
                             "takes a model with one or more, e.g. --variant trecx")
    if cfg.rule == "certified_per_exit" and len(names) < 3:
        raise ConfigError(f"--rule certified_per_exit needs two or more early exits; {cfg.variant} has one")
    loaded = task.load(cfg.data_dir, cfg.split_seed)  # deploy.json records the split; results/<task>/ its files
    data, info, calib = loaded.splits, loaded.info, loaded.calibration(cfg.calibration)
    log.info("%s/%s: converting %d segments, int8 calibrated on %d training samples", cfg.task, cfg.variant,
             len(names), len(calib))
    graphs = export_graphs(model, base, calib, cfg.pooling)
    segments = segment_names(len(names) - 1)
    x_test = data["test"][0]
    rec: dict = {"task": cfg.task, "variant": cfg.variant, "baseline": task.baseline, "exits": names,
                 "segments": segments, "pooling": cfg.pooling,
                 "calibration": f"{len(calib)} random samples of the training split",
                 "data": info, "size_bytes": {k: len(v) for k, v in graphs.items()},
                 "flash_bytes_int8": {cfg.variant: sum(map(len, segments_of(graphs))),
                                      "baseline": len(graphs["baseline_int8"])},
                 "float_split_max_abs_diff": float_check(model, graphs, x_test[:cfg.check_samples])}
    rec |= tflm_check(graphs, x_test[:5])
    costs = flops.exit_costs(model)
    rec["mflops"] = {n: costs[n]["mflops"] for n in names} | {"baseline": flops.exit_costs(base)["final"]["mflops"]}
    acc, curves, curve_rows, int8_outputs = evaluate_int8(model, base, graphs, data, rec["mflops"])
    rec["accuracy"] = acc
    rec["int8_minus_float_points_test"] = {k: 100 * (acc["test"]["int8"][k] - acc["test"]["keras_float"][k])
                                           for k in acc["test"]["int8"]}
    rec["tradeoffs_int8"] = sweep.tradeoffs(curves["val"], curves["test"], acc["val"]["int8"]["baseline"],
                                            acc["test"]["int8"]["baseline"], rec["mflops"]["baseline"])
    rules = [r for r in RULES if r != "certified_per_exit" or len(names) > 2]
    n_val = len(data["val"][1])
    floor = 100 * calibrate.min_budget(n_val, GUARANTEE_DELTA, GUARANTEE_METHOD)
    drop = cfg.drop_points or next((d for d in DROP_POINTS if d >= floor), DROP_POINTS[-1])
    rec["budget"] = {"points": drop, "smallest_certifiable_points": floor, "validation_samples": n_val,
                     "chosen_by": "--drop-points" if cfg.drop_points else
                     f"the smallest of {DROP_POINTS} points at or above what {n_val} validation samples can certify "
                     "with no observed loss (calibrate.min_budget: their number alone, not their outputs)"}
    rec["thresholds_by_rule"] = {r: choose(r, int8_outputs, data, rec["mflops"], names, drop) for r in rules}
    rec["threshold"] = rec["thresholds_by_rule"][cfg.rule]
    # what this validation split can certify at each budget (one shared rho): the smallest budget it vouches for
    rec["certified_by_budget"] = {str(d): {k: c[k] for k in ("rhos", "val", "test")} for d in DROP_POINTS
                                  for c in [choose("certified", int8_outputs, data, rec["mflops"], names, d)]}
    rec["rule"], rec["rhos"], rec["drop_points"] = cfg.rule, rec["threshold"]["rhos"], drop
    # Only now, with every check passed, are the files (tracked ones among them) replaced, each whole.
    for name, content in graphs.items():
        with files.atomic(out / graph_file(cfg.variant, name)) as tmp:
            tmp.write_bytes(content)
    for split, rows in curve_rows.items():
        write_csv(out / f"benefit_curve_int8_{split}.csv", rows)
    files.write_json(out / "deploy.json", rec)
    save_run_info(out, cfg)
    t = rec["threshold"]
    log.info("%s: float split max diff %s; int8 test accuracy %s; thresholds %s (%s, %d-point budget): int8 test "
             "drop %.2f points, FLOPs cut %.1f%%; arena %s", out, rec["float_split_max_abs_diff"], acc["test"]["int8"],
             rec["rhos"], cfg.rule, drop, t["test"]["drop_points"], t["test"]["flops_cut_pct"],
             rec["arena_bytes"])
    return rec


def main(argv: list[str] | None = None) -> dict:
    return run(parse(DeployConfig, None, argv, description=__doc__, required=("task",)))
