"""Train and test on several seeded splits, then report the mean and a 95% interval:

    python -m visual_wake_words.seeds --splits 0 1 2 3 4 --publish-split 0

The test split holds 200 images, so one split's numbers move by a few points; this gives their
spread. The models of `--publish-split` are copied to pretrained/ (the declared split)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import paths, report
from visual_wake_words import test, train

TASK = "visual_wake_words"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="split seeds")
    p.add_argument("--variants", nargs="+", default=["baseline", "trecx", "trecx_noev"])
    p.add_argument("--publish-split", type=int, default=0, help="split whose models go to pretrained/")
    p.add_argument("--data-dir", default="", help="datasets root")
    p.add_argument("--runs-dir", default=str(paths.REPO / "runs" / TASK / "splits"))
    p.add_argument("--out-dir", default=str(paths.results_dir() / TASK / "splits"))
    p.add_argument("--config", default="default", help="training preset")
    args = p.parse_args(argv)
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    tables = {}
    for s in args.splits:
        models = Path(args.runs_dir) / f"split{s}" / "models"
        models.mkdir(parents=True, exist_ok=True)
        for v in args.variants:
            run = train.main(["--config", args.config, "--variant", v, "--split-seed", str(s), "--seed", str(s),
                              "--out-dir", str(models.parent / v), "--publish", str(s == args.publish_split), *data])
            shutil.copy(run / "best.keras", models / f"{v}.keras")
        out = Path(args.out_dir) / f"split{s}"
        test.main(["--models-dir", str(models), "--out-dir", str(out), "--split-seed", str(s), *data])
        tables[f"split{s}"] = out / "table1.csv"
    rows = report.aggregate(tables, Path(args.out_dir) / "summary.csv")
    for r in rows:
        if r["metric"] in ("final_test_accuracy", "early_exit_test_accuracy", "test_flops_reduction_pct_1pt"):
            print(f"{r['model']:>18} {r['metric']:<30} {r['mean']:.4f} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]"
                  f" n={r['n']}")


if __name__ == "__main__":
    from common import cli

    cli.run(main)
