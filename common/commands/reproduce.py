"""The main job: every task's test on its pretrained weights, then each task's model card and targets, the
deployments' certificates, then results/SUMMARY.md and the README's results table, all regenerated from results/:

    python -m common reproduce

A task with no pretrained weights yet gets a smoke run instead (a few training steps, then the
whole test pipeline, into runs/smoke/), and the output says plainly what is missing.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import files, paths, records, tasks
from ..config import parse
from ..evaluation.summary import exists
from ..reporting import digest
from . import certificates, model_card, targets, test, train

log = logging.getLogger("trecx.reproduce")


@dataclass
class ReproduceConfig:
    """Options of `python -m common reproduce`."""

    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    readme: str = "README.md"  # the README whose results table is regenerated (relative to the repo); "" = none


def smoke(task: tasks.Task, root: Path, data_dir: str = "") -> Path:
    """Train the task's smoke variants for a few steps and test them, all under `root`; returns the
    results folder."""
    models = root / task.name / "models"
    models.mkdir(parents=True, exist_ok=True)
    for v in task.smoke_variants:
        folder = train.run(train.preset(task.name, "smoke", variant=v, out_dir=str(root / task.name / v),
                                        data_dir=data_dir))
        shutil.copy(folder / "best.keras", models / f"{v}.keras")
    out = root / "results" / task.name
    test.run(test.TestConfig(task=task.name, models_dir=str(models), out_dir=str(out), data_dir=data_dir))
    return out


def shipped(task: tasks.Task) -> bool:
    """Whether the task has pretrained models to test, its trade-offs' baseline among them."""
    folder = paths.pretrained_dir(task.name)
    return any(folder.glob("*.keras")) and (task.reference is not None or (folder / f"{task.baseline}.keras").exists())


def run(cfg: ReproduceConfig) -> dict[str, Path]:
    """Test every task, write its card and targets, then the digests; returns the results folder per task."""
    results, smoked = {}, {}
    for spec in tasks.all_tasks():
        if shipped(spec):
            log.info(f"=== {spec.name}: testing {len(list(paths.pretrained_dir(spec.name).glob('*.keras')))} "
                     "pretrained model(s)")
            test.run(test.TestConfig(task=spec.name, data_dir=cfg.data_dir))
            results[spec.name] = paths.results_dir() / spec.name
        else:
            log.warning(f"=== {spec.name}: MISSING pretrained/{spec.name}/*.keras (no trained weights yet). Running "
                        "the smoke configuration end to end instead; its numbers mean nothing.")
            smoked[spec.name] = smoke(spec, paths.runs_dir() / "smoke", cfg.data_dir)
    for task, out in results.items():  # model cards and targets, from the results files just written
        if exists(out, "trecx"):
            model_card.run(model_card.CardConfig(task=task))
        targets.run(targets.TargetsConfig(task=task))
    if results:
        if any(paths.results_dir().glob(f"*/deploy/*/{records.DEPLOY}")):
            certificates.run(certificates.CertificatesConfig())
        text = digest.summary_md(results, "Results summary", missing=list(smoked))
        files.write_text(paths.results_dir() / "SUMMARY.md", text)
        if cfg.readme and not smoked:
            readme = paths.home() / cfg.readme
            files.write_text(readme, digest.with_results_table(readme.read_text(),
                                                               digest.results_table(paths.results_dir()), cfg.readme))
        log.info(f"wrote {paths.portable(paths.results_dir() / 'SUMMARY.md')} and the results table of {cfg.readme}")
    if smoked:
        files.write_text(paths.runs_dir() / "smoke" / "SUMMARY.md",
                         digest.summary_md(smoked, "SMOKE RUN: not trained models"))
        log.warning(f"MISSING pretrained weights for: {', '.join(smoked)}. Their smoke results are in runs/smoke/ "
                    "(results/ was left untouched for them).")
    return results


def main(argv: list[str] | None = None) -> dict[str, Path]:
    return run(parse(ReproduceConfig, None, argv, description=__doc__))
