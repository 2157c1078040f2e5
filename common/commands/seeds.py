"""Train and test the same variants under several seeds, then report means and 95% intervals:

    python -m common seeds --task keyword_spotting --seeds 0 1 2
    python -m common seeds --task visual_wake_words --seeds 0 1 2 3 4 --vary-split true

Each seed trains every variant (`<task>.train --seed k`, with `--split-seed k` too when --vary-split)
into <runs>/<task>/seeds/seed<k>/, tests them together (`<task>.test`) into
results/<task>/seeds/seed<k>/, and pairs T-RecX with its ablations on the same seed: the mean gain of
its benefit curve over the ablation's (the paper's Fig 6) and the gain of its final exit. Writes
summary.csv (every Table 1 number) and comparisons.csv (the paired gains) with the mean and a 95%
t-interval across seeds, comparisons.png, fig6_mean_curves.png (each variant's benefit curve, mean
and interval band), and says which gains lie beyond their interval. A finished
run is reused, so the command resumes where it stopped. The models of `--publish-seed` go to
pretrained/<task>/ as usual; every other seed's to pretrained/<task>/seeds/seed<k>/ (`--keep-seeds`).
Seeds trained elsewhere (a run queue's `--seed k --publish-as seeds/seed<k>/...`) and tested with
`<task>.test --models-dir pretrained/<task>/seeds/seed<k> --out-dir results/<task>/seeds/seed<k>` are
summarised with `--tested-only true --publish-seed 0` (seed 0's table is then results/<task>/table1.csv).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import paths, tasks
from ..config import parse, save_run_info
from ..errors import ConfigError
from ..evaluation import plots
from ..evaluation.evaluate import curve_gain
from ..files import read_csv, write_csv
from ..reporting import report
from ..reporting.compare import SEEDS_METRICS
from ..train.runs import publish
from . import test, train

log = logging.getLogger("trecx.seeds")
PAIRS = (("trecx", "trecx_notransfer"), ("trecx", "trecx_noev"), ("trecx", "eefmaps_concat"))  # Fig 6, EV


@dataclass
class SeedsConfig:
    """Options of `python -m common seeds`."""

    task: str = ""  # keyword_spotting or visual_wake_words (any task with --tested-only)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds
    vary_split: bool = False  # each seed also draws its own data split (VWW: a 200-image test split)
    variants: tuple[str, ...] = ("trecx", "trecx_noev", "trecx_notransfer", "eefmaps_concat")  # trained per seed
    publish_seed: int = -1  # the seed whose models are copied to pretrained/ (-1: none)
    keep_seeds: bool = True  # also keep every other seed's models in pretrained/<task>/seeds/seed<k>/
    train_config: str = "default"  # the training preset (--config of <task>.train)
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    runs_dir: str = ""  # "" = $TRECX_RUNS/<task>/seeds
    out_dir: str = ""  # "" = results/<task>/seeds
    threads: int = 0  # TensorFlow CPU threads of each training (0 = all cores; a run queue passes 1)
    tested_only: bool = False  # train and test nothing: aggregate the seeds already tested (see tested_table)


def tested_table(out_dir: Path, seed: int, publish_seed: int, task: str) -> Path:
    """table1.csv of a seed already tested: <out_dir>/seed<k>/, or for the published seed, whose models
    are pretrained/<task>/ itself, results/<task>/ when it has no seed folder."""
    path = out_dir / f"seed{seed}" / "table1.csv"
    if not path.exists() and seed == publish_seed:
        path = paths.results_dir() / task / "table1.csv"
    if not path.exists():
        raise ConfigError(f"--tested-only: seed {seed} has no {path}: test its models first")
    return path


def pair_gains(out: Path) -> list[dict]:
    """T-RecX against each ablation tested in `out`: curve gain and final-exit gain, in points."""
    final = {r["model"]: r["final_test_accuracy"] for r in read_csv(out / "table1.csv")}
    rows = []
    for a, b in PAIRS:
        if a in final and b in final:
            curve = curve_gain(out / a / "benefit_curve_test.csv", out / b / "benefit_curve_test.csv")
            rows.append({"model": f"{a} vs {b}", "curve_gain_points": curve["mean_gain_points"],
                         "final_gain_points": 100 * (final[a] - final[b])})
    write_csv(out / "comparisons.csv", rows)
    return rows


def verdict(row: dict) -> str:
    """Whether a mean gain lies beyond its 95% interval's zero."""
    if row["n"] < 2:
        return "one seed: no interval"
    if row["ci95_low"] > 0:
        return "better, beyond the interval"
    if row["ci95_high"] < 0:
        return "worse, beyond the interval"
    return "within the interval (no difference shown)"


def run(args: SeedsConfig) -> list[dict]:
    """Train and test every seed (or read the tested ones), then aggregate; returns summary.csv's rows."""
    task = tasks.get(args.task)
    runs_dir = Path(args.runs_dir or paths.runs_dir() / task.name / "seeds")
    out_dir = Path(args.out_dir or paths.results_dir() / task.name / "seeds")
    if args.tested_only:
        tables = {f"seed{s}": tested_table(out_dir, s, args.publish_seed, task.name) for s in args.seeds}
        rows = report.aggregate(tables, out_dir / "summary.csv", shared_only=True)
        save_run_info(out_dir, args, {"tables": {k: paths.portable(p) for k, p in tables.items()}})
        for r in rows:
            if r["metric"] in SEEDS_METRICS:
                log.info("%-12s %-32s %.4g [%.4g, %.4g] n=%d: %s", r["model"], r["metric"], r["mean"],
                         r["ci95_low"], r["ci95_high"], r["n"], r["values"])
        return rows
    tables, gains = {}, {}
    for s in args.seeds:
        split = s if args.vary_split else 0
        models = runs_dir / f"seed{s}" / "models"
        models.mkdir(parents=True, exist_ok=True)
        for v in args.variants:
            folder = train.run(train.preset(task.name, args.train_config, variant=v, seed=s, split_seed=split,
                                            out_dir=str(models.parent / v), publish=s == args.publish_seed,
                                            threads=args.threads, data_dir=args.data_dir))
            shutil.copy(folder / "best.keras", models / f"{v}.keras")
            if s != args.publish_seed and args.keep_seeds:  # the published seed went to pretrained/<task>/
                publish(folder, task.name, v, sub=f"seeds/seed{s}")
        out = out_dir / f"seed{s}"
        test.run(test.TestConfig(task=task.name, models_dir=str(models), out_dir=str(out), split_seed=split,
                                 data_dir=args.data_dir))
        tables[f"seed{s}"] = out / "table1.csv"
        pair_gains(out)
        gains[f"seed{s}"] = out / "comparisons.csv"
    rows = report.aggregate(tables, out_dir / "summary.csv")
    compared = [r | {"verdict": verdict(r)} for r in report.aggregate(gains, out_dir / "comparisons.csv")]
    write_csv(out_dir / "comparisons.csv", compared)
    if compared:
        plots.gain_intervals(compared, out_dir / "comparisons.png",
                             title=f"{task.name}: T-RecX minus each ablation, {len(args.seeds)} seeds (test)")
    fig6 = {v: [out_dir / k / v / "benefit_curve_test.csv" for k in tables] for v in dict.fromkeys(sum(PAIRS, ()))}
    fig6 = {v: ps for v, ps in fig6.items() if ps and all(p.exists() for p in ps)}
    if fig6:
        write_csv(out_dir / "fig6_mean_curves.csv", plots.mean_curves(
            fig6, out_dir / "fig6_mean_curves.png", title=f"{task.name}: benefit curves, {len(tables)} seeds (test)"))
    for r in compared:
        log.info("%-28s %-18s %+.2f points [%+.2f, %+.2f] n=%d: %s", r["model"], r["metric"], r["mean"],
                 r["ci95_low"], r["ci95_high"], r["n"], r["verdict"])
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(SeedsConfig, None, argv, description=__doc__, required=("task",)))
