"""Train and test on several seeded splits, then report the mean and a 95% interval:

    python -m visual_wake_words.seeds --splits 0 1 2 3 4 --publish-split 0

The test split holds 200 images, so one split's numbers move by a few points; this gives their
spread. The models of `--publish-split` are copied to pretrained/ (the declared split)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from common import paths
from common.config import parse
from common.evaluation import report
from visual_wake_words import test, train

TASK = "visual_wake_words"


@dataclass
class SeedsConfig:
    """Options of visual_wake_words.seeds."""

    splits: tuple[int, ...] = (0, 1, 2, 3, 4)  # split seeds (each also seeds the training)
    variants: tuple[str, ...] = ("baseline", "trecx", "trecx_noev")  # models trained on every split
    publish_split: int = 0  # the split whose models go to pretrained/
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    runs_dir: str = ""  # "" = $TRECX_RUNS/visual_wake_words/splits
    out_dir: str = ""  # "" = results/visual_wake_words/splits
    train_config: str = "default"  # the training preset (--config of visual_wake_words.train)


def main(argv: list[str] | None = None) -> None:
    args = parse(SeedsConfig, {"default": SeedsConfig()}, argv, description=__doc__)
    runs_dir = Path(args.runs_dir or paths.runs_dir() / TASK / "splits")
    out_dir = Path(args.out_dir or paths.results_dir() / TASK / "splits")
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    tables = {}
    for s in args.splits:
        models = runs_dir / f"split{s}" / "models"
        models.mkdir(parents=True, exist_ok=True)
        for v in args.variants:
            run = train.main(["--config", args.train_config, "--variant", v, "--split-seed", str(s), "--seed", str(s),
                              "--out-dir", str(models.parent / v), "--publish", str(s == args.publish_split), *data])
            shutil.copy(run / "best.keras", models / f"{v}.keras")
        out = out_dir / f"split{s}"
        test.main(["--models-dir", str(models), "--out-dir", str(out), "--split-seed", str(s), *data])
        tables[f"split{s}"] = out / "table1.csv"
    rows = report.aggregate(tables, out_dir / "summary.csv")
    for r in rows:
        if r["metric"] in ("final_test_accuracy", "early_exit_test_accuracy", "test_flops_reduction_pct_1pt"):
            print(f"{r['model']:>18} {r['metric']:<30} {r['mean']:.4f} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]"
                  f" n={r['n']}")


if __name__ == "__main__":
    from common import cli

    cli.run(main)
