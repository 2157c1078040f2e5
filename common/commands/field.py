"""A certified deployment in the field (a benchmark, not a test): python -m common field --task T

For each certified deployment of the task (`studies.field.deployed`), its int8 graphs run on TFLM over the test
samples under every shift the task meets (`data.shifts`, severities 1..3), and label-free monitored streams run over
those outcomes (`studies.streams`) with the monitor's level certified on the calibration split
(`monitor.certified_level`). Writes, per deployment, results/<task>/field/<deployment>/
field.json (its rows below, and the monitor on the emulated board over a shifting stream, checked against the Python
runtime to the bit, with its cost), stream.png (one shifting stream), config.json; then, over every deployment
studied (this run or before, while its deployment is unchanged), results/<task>/field/shift.csv (per shift and
severity: the drop against the baseline under the same shift, exit rates, disagreement with the final exit),
shift.png, streams.csv (false alarms in distribution; delay, drop with and without the monitor, compute, per
shift) and field_targets.csv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import files, paths, records, tasks
from ..config import parse, save_run_info
from ..data import shifts
from ..edge import board, board_check
from ..errors import ConfigError
from ..evaluation.monitor import Monitor
from ..reporting import field as report
from ..studies import field, streams
from ..studies import plots as study_plots

log = logging.getLogger("trecx.field")
DEPLOYMENTS = {"image_classification": ("trecx2",), "keyword_spotting": ("trecx_plus_5pt", "trecx2_gate_5pt"),
               "visual_wake_words": ("trecx2_5pt",)}  # the certified deployments each task studies by default


@dataclass
class FieldConfig:
    """Options of `python -m common field`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    deployments: tuple[str, ...] = ()  # folders of results/<task>/deploy/ (empty: the task's defaults)
    samples: int = 0  # test samples per condition (0: all the local test split has)
    audit: float = 1 / 16  # the fraction of samples the monitor audits
    alpha: float = 0.05  # the monitor's lifetime false-alarm probability
    delta: float = 0.05  # the level's certificate's failure probability
    streams: int = 200  # in-distribution streams per deployment
    length: int = 10_000  # samples per stream
    shifted_streams: int = 50  # streams per shift and severity
    switch: int = 5_000  # the sample a shifted stream switches at (its length: `length`)
    firmware_samples: int = 1_500  # the board stream's length (0: no board run); the shift starts at a third
    cpu: str = "cortex-m4"
    kernels: str = "cmsis_nn"
    third_party: str = ""  # ../shared/third_party (the TFLM snapshot) unless given
    seed: int = 0
    data_dir: str = ""
    split_seed: int = 0
    results_dir: str = ""  # "" = results/<task>


def check(cfg: FieldConfig) -> None:
    if not 0 < cfg.audit <= 1 or not 0 < cfg.alpha < 1 or not 0 < cfg.delta < 1:
        raise ConfigError(f"--audit must lie in (0, 1], --alpha and --delta in (0, 1) (got {cfg.audit}, {cfg.alpha}, "
                          f"{cfg.delta})")
    if cfg.streams < 1 or cfg.shifted_streams < 1 or not 0 < cfg.switch < cfg.length:
        raise ConfigError(f"--streams and --shifted-streams must be at least 1 and --switch in (0, --length) (got "
                          f"{cfg.streams}, {cfg.shifted_streams}, {cfg.switch}, {cfg.length})")


def run(cfg: FieldConfig) -> dict:
    check(cfg)
    task = tasks.get(cfg.task)
    if task.field is None:
        raise ConfigError(f"task {task.name} has no field hook (Task.field): it cannot be shifted")
    out = Path(cfg.results_dir or paths.results_dir() / task.name) / "field"
    deploy_dir = paths.results_dir() / task.name / "deploy"
    fd = task.field(cfg.data_dir, cfg.split_seed)
    x_cal = task.load(cfg.data_dir, cfg.split_seed).splits["calibration"][0]
    for name in cfg.deployments or DEPLOYMENTS.get(task.name, ()):
        study(cfg, task, fd, x_cal, deploy_dir / name, out / name)
    shift_rows, stream_rows, boards = report.gather(out, deploy_dir)  # every deployment studied, this run or before
    if not shift_rows:
        raise ConfigError(f"no certified deployment of {task.name} studied in {paths.portable(out)}: run python -m "
                          "common deploy first")
    files.write_csv(out / "shift.csv", shift_rows)
    files.write_csv(out / "streams.csv", stream_rows)
    study_plots.shift_effects(shift_rows, out / "shift.png", f"{task.name}: certified deployments under shift (test)")
    rows = report.targets(task.name, shift_rows, stream_rows, boards)
    files.write_csv(out / "field_targets.csv", rows)
    return {"shift": shift_rows, "streams": stream_rows, "targets": rows}


def study(cfg: FieldConfig, task: tasks.Task, fd: tasks.FieldData, x_cal: np.ndarray, folder: Path, out: Path
          ) -> dict | None:
    """One deployment in the field: its shift rows, its streams, one stream's figure and, with
    `firmware_samples`, the monitor on the board; written to `out`/field.json (with config.json beside it)."""
    name = folder.name
    d = field.deployed(folder)
    if d is None or len(set(d.rhos)) != 1:
        log.info("%s: %s: left out", name, "certified nothing" if d is None else
                 "a threshold per exit (the monitor's level is certified for one shared threshold)")
        return None
    q = field.level(d, x_cal, cfg.delta)
    if q is None:
        log.info("%s: no level certifies its threshold on the calibration split: no monitor", name)
        return None
    spec = Monitor(level=q, alpha=cfg.alpha, audit=cfg.audit, seed=cfg.seed + 1)
    got = field.all_outcomes(d, fd, task.name, cfg.samples, cfg.seed)
    clean = got[field.CLEAN]
    common = {"deployment": name, "digest": d.digest, "budget_points": d.budget, "certified_as": d.certified_as,
              "level": q, "alpha": cfg.alpha, "audit": cfg.audit}
    shift_rows = [common | {"shift": kind, "severity": sev} | field.shift_row(o, d) for (kind, sev), o in got.items()]
    ind = streams.in_distribution(clean, d, spec, cfg.streams, cfg.length, cfg.seed)
    log.info("%s: level %.3f; %d false alarms in %d streams of %d", name, q, ind["false_alarms"], cfg.streams,
             cfg.length)
    stream_rows = [common | {"shift": "none", "severity": 0} | ind]
    stream_rows += [common | {"shift": kind, "severity": sev} | streams.shifted(
        clean, o, d, spec, cfg.shifted_streams, cfg.switch, cfg.length - cfg.switch, cfg.seed)
        for (kind, sev), o in got.items() if kind != "none"]
    worst = max((r for r in shift_rows if r["shift"] != "none"), key=lambda r: r["disagreement"])
    study_plots.stream_trace(*_trace(clean, got[worst["shift"], worst["severity"]], d, spec, cfg), out / "stream.png")
    board = _board(cfg, task, fd, d, spec, worst) if cfg.firmware_samples else None
    rec = {"deployment": d.digest, "monitor": spec.describe(), "shift": shift_rows, "streams": stream_rows,
           "board": board}
    files.write_json(out / "field.json", rec)
    save_run_info(out, cfg, {"splits_read": ["test (shifted)", "calibration (the level)"],
                             "local_data": "the local test split (a subset for KWS and VWW)"})
    return rec


def _trace(clean, moved, d, spec: Monitor, cfg: FieldConfig) -> tuple:
    """One shifting stream with the monitor's history kept, for the figure."""
    both = clean.then(moved)
    order = streams.switching(np.random.default_rng(cfg.seed), len(clean.labels), len(moved.labels), cfg.switch,
                              cfg.length - cfg.switch)
    r = streams.run(both, order, d, spec, keep=True)
    return both, order, r, d, spec, cfg.switch


def _board(cfg: FieldConfig, task: tasks.Task, fd: tasks.FieldData, d, spec: Monitor, worst: dict) -> dict:
    """The monitor on the board over a stream of the clean test samples, then the same samples under the shift the
    early exit feels most, from a third of `firmware_samples` on (each repeat with another shift seed)."""
    n, clean = cfg.firmware_samples, fd.front_end(fd.raw)
    switch = n // 3
    parts, seed = [clean[np.arange(switch) % len(clean)]], cfg.seed
    while sum(map(len, parts)) < n:
        parts.append(fd.front_end(shifts.apply(worst["shift"], fd.raw, worst["severity"], seed, fd.background)))
        seed += 1
    x = np.concatenate(parts)[:n]
    lib = board.libraries(cfg.cpu, cfg.kernels, Path(cfg.third_party) if cfg.third_party else None, profile=False)
    log.info("%s: the monitor on %s over %d samples (%s %d from sample %d)", d.name, cfg.cpu, n, worst["shift"],
             worst["severity"], switch)
    rec = board_check.monitored(d.segments, d.rhos, x, lib[False], cfg.cpu, paths.cache_dir() / "firmware", spec,
                                d.signal)
    folder = paths.results_dir() / task.name / "deploy" / d.name
    own = records.read_result(folder / f"firmware_{cfg.cpu}_{cfg.kernels}.json", records.read(folder))
    return {"cpu": cfg.cpu, "kernels": cfg.kernels, "baseline_instructions": own and own["instructions"]["baseline"],
            "switch_at": switch,
            "stream": f"{switch} clean test samples, then {worst['shift']} severity {worst['severity']}", **rec}


def main(argv: list[str] | None = None) -> dict:
    return run(parse(FieldConfig, None, argv, description=__doc__))

