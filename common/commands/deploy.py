"""Deploy a task's early-exit model as int8 graphs split at its exits: python -m common deploy --task TASK

Writes results/<task>/deploy/<variant>/: the k + 1 segments of a k-exit model (head, mid_1.., tail) and the
baseline, each as float32 and full-integer int8 .tflite (calibrated on training samples only), and deploy.json:
- the float segment graphs against the Keras model (max abs difference of every exit);
- the accuracy of every exit, Keras float vs int8 graphs, on the validation and test splits;
- sizes (flash) and tflite-micro tensor-arena sizes (RAM), and TFLM vs LiteRT agreement;
- the thresholds to deploy (`threshold`), by `--rule` (`evaluation.thresholds`), all on the int8 outputs of the
  tflite-micro interpreter (the kernels the firmware is checked against): by default one rho certified by
  Learn-then-Test on the *calibration* split, which nothing else read (`data.splits`): with probability
  >= 1 - delta over that split's draw, the expected drop against the int8 baseline on its distribution is within
  `--drop-points`; `certified_per_exit` a certified threshold per exit (candidates ordered on validation);
  `validation` the rho chosen on validation, without a guarantee (labelled so in every record); each with what it
  gives on the test split, its drop with a 95% interval. Every rule applicable is recorded (`thresholds_by_rule`),
  with the lineage of the calibration split (`lineage`: which steps read it) and the SHA-256 of the model, the
  baseline and every graph (`hashes`; common/records.py reads it back and refuses a mismatch).
`python -m common benchmark` and `python -m common firmware` then run these files at the deployed thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .. import files, paths, records, tasks
from ..config import parse, save_run_info
from ..data.splits import lineage
from ..edge import costmodel
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
from ..edge.runtime import exit_quantization
from ..errors import ConfigError, ModelFileError
from ..evaluation import calibrate, signals, sweep
from ..evaluation.evaluate import CALIBRATION, GUARANTEE_DELTA, GUARANTEE_METHOD, weights_digest
from ..files import write_csv
from ..models import contract, flops, registry
from ..models.contract import load_model

log = logging.getLogger("trecx.deploy")
WIDER_POINTS = (5, 10)  # budgets certified_by_budget tries when none of DROP_POINTS certifies


@dataclass
class DeployConfig:
    """Options of `python -m common deploy` and `benchmark`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    variant: str = tasks.DEPLOYED  # the early-exit model: <models_dir>/<variant>.keras
    models_dir: str = ""  # "" = pretrained/<task>
    out_dir: str = ""  # "" = results/<task>/deploy/<variant>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    calibration: int = 300  # training samples that set the int8 quantization (not the calibration split)
    drop_points: int = 0  # the budget, points below the int8 baseline (1, 2, 3, 5 or 10; 0 = the smallest of 1-3 that
    #                       the calibration split's size certifies with a zero loss: calibrate.zero_loss_budget)
    cost: str = "flops"  # the cost basis the cheapest threshold is chosen in: flops, or a device (cortex-m4/cmsis_nn)
    pooling: str = "mean"  # global average pooling as MEAN (the converter's) or average_pool (CMSIS-NN's, MLPerf's)
    rule: str = "certified"  # certified (one rho), certified_per_exit (k >= 2 exits) or validation (no guarantee)
    signal: str = "max_softmax"  # the exit signal thresholded (evaluation.signals); fitted ones fit on validation
    check_samples: int = 100  # test samples on which the float graphs are compared with Keras
    repeats: int = 3  # benchmark: passes over the test samples (each sample's fastest run counts)
    samples: int = 1000  # benchmark: test samples timed (0 = all)
    num_threads: int = 1  # benchmark: interpreter threads (1, as on a microcontroller)


def out_dir(cfg: DeployConfig) -> Path:
    return Path(cfg.out_dir or paths.results_dir() / cfg.task / "deploy" / cfg.variant)


def model_path(cfg: DeployConfig) -> Path:
    return Path(cfg.models_dir or paths.pretrained_dir(cfg.task)) / f"{cfg.variant}.keras"


def load_models(cfg: DeployConfig, task: tasks.Task) -> tuple[keras.Model, keras.Model]:
    """(early-exit model, baseline): the baseline is the one the task's trade-offs are measured against."""
    path = model_path(cfg)
    if not path.exists():
        raise ModelFileError(f"{path} not found: train it with python -m {cfg.task}.train --variant "
                             f"{cfg.variant} --publish true, or pass --models-dir")
    return load_model(path), registry.baseline_model(task, path.parent)


def _costs(cfg: DeployConfig, graphs: dict[str, bytes], mflops: dict[str, float], names: list[str],
           x: np.ndarray) -> dict[str, float]:
    """Cumulative cost per exit and the baseline's on `cfg.cost`: the model's MFLOPs, or a device's M instructions
    (a profiled firmware run of the int8 graphs, else the instructions-per-MAC table: `edge.costmodel`)."""
    basis = costmodel.parse(cfg.cost)
    if not basis.cpu:
        return dict(mflops)
    per_segment, _ = costmodel.segment_costs(segments_of(graphs), x[:4], basis)
    base, _ = costmodel.segment_costs([graphs["baseline_int8"]], x[:4], basis)
    per_exit = dict(zip(names, costmodel.cumulative(per_segment), strict=True))
    return per_exit | {"baseline": costmodel.cumulative(base)[0]}


def run(cfg: DeployConfig) -> dict:
    """Export, check and write the graphs and deploy.json; returns its record."""
    if cfg.drop_points not in (0, *DROP_POINTS, *WIDER_POINTS):
        raise ConfigError(f"--drop-points must be one of 0 (auto), {', '.join(map(str, DROP_POINTS + WIDER_POINTS))},"
                          f" got {cfg.drop_points}")
    if cfg.rule not in RULES:
        raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got '{cfg.rule}'")
    if cfg.signal not in signals.SIGNALS:
        raise ConfigError(f"--signal must be one of {', '.join(signals.SIGNALS)}, got '{cfg.signal}'")
    if cfg.signal != "max_softmax" and cfg.rule == "certified_per_exit":
        raise ConfigError("--rule certified_per_exit thresholds max softmax only: use --rule certified with --signal")
    if cfg.pooling not in POOLINGS:
        raise ConfigError(f"--pooling must be one of {', '.join(POOLINGS)}, got '{cfg.pooling}'")
    basis = costmodel.parse(cfg.cost)
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
    data, info, calib = loaded.splits, loaded.info, loaded.int8_samples(cfg.calibration)
    log.info("%s/%s: converting %d segments, int8 quantization set on %d training samples", cfg.task, cfg.variant,
             len(names), len(calib))
    graphs = export_graphs(model, base, calib, cfg.pooling)
    segments = segment_names(len(names) - 1)
    x_test = data["test"][0]
    rec: dict = {"task": cfg.task, "variant": cfg.variant, "baseline": task.baseline, "exits": names,
                 "segments": segments, "pooling": cfg.pooling,
                 "int8_quantization": f"{len(calib)} random samples of the training split",
                 "data": info, "size_bytes": {k: len(v) for k, v in graphs.items()},
                 "flash_bytes_int8": {cfg.variant: sum(map(len, segments_of(graphs))),
                                      "baseline": len(graphs["baseline_int8"])},
                 "float_split_max_abs_diff": float_check(model, graphs, x_test[:cfg.check_samples])}
    rec |= tflm_check(graphs, x_test[:5])
    costs = flops.exit_costs(model)
    rec["mflops"] = {n: costs[n]["mflops"] for n in names} | {"baseline": flops.exit_costs(base)["final"]["mflops"]}
    cost = _costs(cfg, graphs, rec["mflops"], names, calib)
    rec["costs"] = {"basis": basis.name, "unit": basis.unit, "per_exit": cost}
    rec["outputs"] = "int8 graphs on the tflite-micro interpreter (TFLM's kernels, as the firmware check)"
    acc, curves, curve_rows, int8_outputs = evaluate_int8(model, base, graphs, data, rec["mflops"])
    rec["accuracy"] = acc
    rec["int8_minus_float_points_test"] = {k: 100 * (acc["test"]["int8"][k] - acc["test"]["keras_float"][k])
                                           for k in acc["test"]["int8"]}
    rec["tradeoffs_int8"] = sweep.tradeoffs(curves["val"], curves["test"], acc["val"]["int8"]["baseline"],
                                            acc["test"]["int8"]["baseline"], rec["mflops"]["baseline"])
    rules = [r for r in RULES if r != "certified_per_exit" or (len(names) > 2 and cfg.signal == "max_softmax")]
    # the signal is fitted on the validation split's int8 outputs: it neither trains the model nor certifies
    signal = signals.fit(cfg.signal, [int8_outputs["val"][e] for e in names], data["val"][1],
                         "the validation split's int8 outputs on TFLM")
    rec["signal"] = signal.describe()
    quant = exit_quantization(segments_of(graphs))
    n_cal = len(data[CALIBRATION][1])
    floor = 100 * calibrate.zero_loss_budget(n_cal, GUARANTEE_DELTA, GUARANTEE_METHOD)
    drop = cfg.drop_points or next((d for d in DROP_POINTS if d >= floor), DROP_POINTS[-1])
    rec["budget"] = {"points": drop, "zero_loss_budget_points": floor, "calibration_samples": n_cal,
                     "chosen_by": "--drop-points" if cfg.drop_points else
                     f"the smallest of {DROP_POINTS} points at or above what {n_cal} calibration samples certify with "
                     "a zero loss on every one (calibrate.zero_loss_budget: their number alone, not their outputs)"}
    models_dir = model_path(cfg).parent
    rec["lineage"] = lineage({cfg.variant: models_dir / f"{cfg.variant}.config.json",
                              task.baseline: models_dir / f"{task.baseline}.config.json"}, cfg.split_seed, info)
    def certify(rule: str, points: int) -> dict:  # the words follow the data's lineage, not the rule
        return choose(rule, int8_outputs, data, cost, rec["mflops"], names, points, basis=basis.name,
                      problems=tuple(rec["lineage"]["problems"]), signal=signal, quant=quant)

    rec["thresholds_by_rule"] = {r: certify(r, drop) for r in rules}
    rec["threshold"] = rec["thresholds_by_rule"][cfg.rule]
    # what the calibration split certifies at each budget (one shared rho), each certificate at delta on its own;
    # past 3 points only while nothing is certified, to say how large a budget this split can vouch for at all
    by_budget: dict[int, dict] = {}
    for d in (*DROP_POINTS, *WIDER_POINTS):
        if d in WIDER_POINTS and any(c["certified"] for c in by_budget.values()):
            break
        by_budget[d] = rec["thresholds_by_rule"]["certified"] if d == drop else certify("certified", d)
    rec["certified_by_budget"] = {str(d): {k: c[k] for k in ("rhos", "val", "test")} for d, c in by_budget.items()}
    rec["smallest_budget_certified"] = next((d for d, c in by_budget.items() if c["certified"]), None)
    rec["rule"], rec["rhos"], rec["drop_points"] = cfg.rule, rec["threshold"]["rhos"], drop
    t = rec["threshold"]["test"]
    rec["over_baseline"] = (f"costs more than its baseline: {-t['cost_cut_pct']:.1f}% more {basis.unit} on test"
                            if t["cost_cut_pct"] < 0 else "")
    # Only now, with every check passed, are the files (tracked ones among them) replaced, each whole.
    written = {graph_file(cfg.variant, name): content for name, content in graphs.items()}
    for name, content in written.items():
        with files.atomic(out / name) as tmp:
            tmp.write_bytes(content)
    for split, rows in curve_rows.items():
        write_csv(out / f"benefit_curve_int8_{split}.csv", rows)
    base_hash = (records.model_hash(models_dir / f"{task.baseline}.keras") if task.baseline != "mlperf_reference"
                 else f"weights (blake2b): {weights_digest(base)}")
    records.write(out, rec, written, model_path(cfg), base_hash)
    save_run_info(out, cfg)
    log.info("%s: float split max diff %s; int8 test accuracy %s; thresholds %s (%s, %d-point budget): int8 test "
             "drop %.2f points, %s cut %.1f%%; arena %s", out, rec["float_split_max_abs_diff"], acc["test"]["int8"],
             rec["rhos"], cfg.rule, drop, t["drop_points"], basis.unit, t["cost_cut_pct"], rec["arena_bytes"])
    if rec["over_baseline"]:
        log.warning("%s: %s", out, rec["over_baseline"])
    return rec


def main(argv: list[str] | None = None) -> dict:
    return run(parse(DeployConfig, None, argv, description=__doc__, required=("task",)))
