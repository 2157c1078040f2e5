"""The exit study: where the early exit goes and how wide it is, judged by what it saves.

    python -m common exit_study --task keyword_spotting

For every cell of the task's `Study` (exit width x position) whose model is in --models-dir and has
been tested (`<task>.test` wrote results/<task>/<variant>/summary.json), it reads the FLOPs cut at
<= 1 point below the baseline (rho chosen on validation; the validation cut judges the designs), then
deploys the model as int8 (the `deploy` command) and times it on TFLM's kernels (`benchmark`) into
results/<task>/exit_study/<variant>/, once. Writes exit_study.csv and exit_study.png (heat maps of the
validation FLOPs cut, the test FLOPs cut and the int8 TFLM latency cut) in results/<task>/.

`--publish-best trecx_plus` ships the cell with the highest validation FLOPs cut as
pretrained/<task>/trecx_plus.* when it is not `trecx` itself (the paper's configuration is a cell;
the choice is `studies.promote`'s); then run `<task>.test` again for its rows and curves, and
`python -m common deploy --variant trecx_plus`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..evaluation import plots
from ..evaluation.summary import Summary, load
from ..files import write_csv
from ..reporting import board as firmware_table
from ..studies import promote
from . import benchmark, deploy, firmware

log = logging.getLogger("trecx.exit_study")


@dataclass
class StudyConfig:
    """Options of `python -m common exit_study`."""

    task: str = ""  # a task with a Study in its spec
    models_dir: str = ""  # "" = pretrained/<task>
    results_dir: str = ""  # where test.py wrote each model's summary.json; "" = results/<task>
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the data split the models were trained with
    samples: int = 300  # benchmark: test samples timed per model (0 = all)
    publish_best: str = ""  # ship the best cell on validation under this name (e.g. trecx_plus); "" = no
    mcu: str = ""  # also run each cell's firmware on an emulated board, "<cpu>/<kernels>" (cortex-m4/cmsis_nn)
    mcu_samples: int = 100  # the firmware's test samples per cell


# The study compares designs at the rho chosen on validation for 1 point (its FLOPs cuts are read so), so its
# cells deploy that rho, labelled as such in their records, not the certified threshold a shipped model gets.
STUDY_RULE = {"rule": "validation", "drop_points": 1}


def cell(summary: Summary) -> dict:
    """FLOPs cuts (%) at the first trade-off (<= 1 point), on validation and test."""
    t = summary.tradeoffs[0]
    return {"rho": t.rho, "val_flops_cut_pct": summary.val_cut(1), "test_flops_cut_pct": t.test_flops_reduction_pct,
            "early_exit_test_accuracy": summary.accuracy("early_exit"), "final_test_accuracy": summary.accuracy(),
            "params": summary.params}


def latency(cfg: StudyConfig, variant: str, models: Path, out: Path) -> dict:
    """The int8 TFLM benchmark of one model, run once (deploy, then benchmark) and read afterwards."""
    if (bench := firmware_table.read_benchmark(out)) is None:
        job = deploy.DeployConfig(task=cfg.task, variant=variant, models_dir=str(models), out_dir=str(out),
                                  split_seed=cfg.split_seed, data_dir=cfg.data_dir, samples=cfg.samples,
                                  **STUDY_RULE)
        deploy.run(job)
        bench = benchmark.run(job)
    tflm = bench["tflm"]
    return {"tflm_latency_cut_pct": tflm["latency_cut_pct"], "tflm_exit_rate": tflm["exit_rate"]}


def mcu_cut(cfg: StudyConfig, variant: str, models: Path, out: Path) -> dict:
    """The instruction cut of one cell's early-exit firmware on the emulated board, run once and read afterwards
    (the cell is deployed again first when its int8 graphs, which git does not keep, are missing)."""
    cpu, kernels = cfg.mcu.split("/")
    rec = out / f"firmware_{cpu}_{kernels}.json"
    if not rec.exists():
        if not (out / f"{variant}_head.int8.tflite").exists():  # the benchmark's own settings, kept as recorded
            bench = firmware_table.read_benchmark(out)
            timed = bench["test_samples"] if bench else cfg.samples
            deploy.run(deploy.DeployConfig(task=cfg.task, variant=variant, models_dir=str(models), out_dir=str(out),
                                           split_seed=cfg.split_seed, data_dir=cfg.data_dir, samples=timed,
                                           **STUDY_RULE))
        firmware.run(firmware.FirmwareConfig(task=cfg.task, variant=variant, cpu=cpu, kernels=kernels,
                                             samples=cfg.mcu_samples, split_seed=cfg.split_seed,
                                             data_dir=cfg.data_dir, deploy_dir=str(out)))
    got = json.loads(rec.read_text())
    return {"mcu_instruction_cut_pct": got["instruction_cut_pct"], "mcu_bit_exact": got["bit_exact"]}


def run(cfg: StudyConfig) -> list[dict]:
    """Read, deploy and time every trained cell; write exit_study.csv and .png; returns the rows."""
    task = tasks.get(cfg.task)
    if task.study is None:
        raise ConfigError(f"--task {cfg.task} has no exit study")
    study = task.study
    models = Path(cfg.models_dir or paths.pretrained_dir(cfg.task))
    results = Path(cfg.results_dir or paths.results_dir() / cfg.task)
    rows = []
    for width in study.widths:
        for position in study.positions:
            variant = study.name(position, width)
            summary = load(results, variant)
            if not (models / f"{variant}.keras").exists() or summary is None:
                log.info("%s: not trained or not tested yet, left blank", variant)
                continue
            row = {"variant": variant, "width": width, "position": position} | cell(summary)
            row |= latency(cfg, variant, models, results / "exit_study" / variant)
            if cfg.mcu:
                row |= mcu_cut(cfg, variant, models, results / "exit_study" / variant)
            rows.append(row)
    if not rows:
        raise ConfigError(f"no model of the {cfg.task} exit study is trained and tested in {models}")
    write_csv(results / "exit_study.csv", rows)
    panels = {}
    for key, title in (("val_flops_cut_pct", "FLOPs cut at <= 1 pt, validation (%)"),
                       ("test_flops_cut_pct", "FLOPs cut at <= 1 pt, test (%)"),
                       ("tflm_latency_cut_pct", "int8 TFLM latency cut, test (%)"),
                       ("mcu_instruction_cut_pct", f"{cfg.mcu.split('/')[0]} firmware instr. cut (%)")):
        if not any(key in r for r in rows):  # the firmware panel only when the cells were run on a board
            continue
        grid = np.full((len(study.widths), len(study.positions)), np.nan)
        for r in rows:
            grid[study.widths.index(r["width"]), study.positions.index(r["position"])] = r[key]
        panels[title] = grid
    plots.heatmaps(panels, [f"{w}" for w in study.widths], [f"{p}" for p in study.positions],
                   results / "exit_study.png", title=f"{cfg.task}: early-exit width x position (rho on validation)",
                   xlabel=f"early exit {study.position_label} n", ylabel="1x1 conv width")
    if cfg.mcu and results.parent == paths.results_dir():  # firmware_targets.csv names the study's best cell
        firmware_table.write(paths.results_dir())
    best = next(r for r in rows if r["variant"] == promote.choose(results, [r["variant"] for r in rows])[0])
    log.info("best on validation: %s (%.1f%% FLOPs cut on validation, %.1f%% on test)", best["variant"],
             best["val_flops_cut_pct"], best["test_flops_cut_pct"])
    if cfg.publish_best:
        promote.ship(models, best["variant"], cfg.publish_best)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(StudyConfig, None, argv, description=__doc__, required=("task",)))
