"""Run one of the project's studies (many independent trainings) as a Ray Tune experiment, on this machine
or on a Ray cluster, then tabulate it with the study's own reader:

    python -m common study --study exit_study --task keyword_spotting      # then exit_study.csv/.png
    python -m common study --study seeds --task keyword_spotting --seeds 0 1 2
    python -m common study --study distill_search --task keyword_spotting
    python -m common study --study recipe_search --task image_classification
    python -m common study --study wave --task image_classification       # every ResNet-8 from scratch
    python -m common study --study exit_study --task keyword_spotting \\
        --address ray://head:10001 --storage /shared/trecx/studies        # on a cluster (or set RAY_ADDRESS)

Each trial is one `<task>.train` run in its usual run folder; stopped in any way and started again, the
same command keeps the finished trials and resumes the others from their last finished epoch
(`studies.tune`). Trials never publish: the driver copies finished models to pretrained/ (`--publish`).
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .. import files, paths, tasks
from ..config import parse
from ..errors import ConfigError
from ..studies import search, tune
from ..train import runs
from . import distill_search, exit_study, seeds, test, train

log = logging.getLogger("trecx.study")


@dataclass
class StudyConfig:
    """Options of `python -m common study`."""

    study: str = ""  # exit_study, seeds, distill_search, recipe_search, wave or smoke (see STUDIES)
    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    # -- where it runs
    address: str = ""  # a Ray cluster to join ("" = $RAY_ADDRESS, or a Ray started here for the study)
    storage: str = ""  # the experiments' folder, shared by every node on a cluster; "" = <runs>/studies
    threads: int = 1  # CPU threads (and Ray CPUs) of each trial: two 1-thread runs beat one 2-thread run here
    max_concurrent: int = 0  # trials side by side at most (0: as many as the CPUs allow)
    dashboard: bool = False  # start Ray's dashboard (local Ray only)
    restart: bool = False  # forget the study's Ray state and start it anew (finished run folders are reused)
    # -- what it trains and writes
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds: the training seeds
    vary_split: bool = False  # seeds: each seed also draws its own data split
    variants: tuple[str, ...] = ()  # seeds: the variants trained per seed (() = the seeds command's; VWW: add baseline)
    publish: bool = True  # copy finished models to pretrained/<task>/ (exit_study, wave)
    read: bool = True  # then run the study's reader (its CSV and figures)
    name: str = ""  # the experiment's folder under --storage; "" = <task>_<study>
    epochs: int = 0  # smoke: epochs of each of its two trials (0: the smoke preset's)
    pack: str = ""  # train nothing: pack the study's Ray state and its trials' run folders into this .tar.gz


def trial(task: str, variant: str, preset: str = "default", publish_as: str = "", **fields) -> dict:
    """One training of a study: `<task>.train --config preset --variant variant --field value ...`."""
    return {"task": task, "preset": preset, "variant": variant, "fields": fields, "publish_as": publish_as}


def _exit_study(cfg: StudyConfig) -> list[dict]:
    study = tasks.get(cfg.task).study
    if study is None:
        raise ConfigError(f"--study exit_study: task {cfg.task} has no exit study")
    cells = [study.name(p, w) for w in study.widths for p in study.positions]
    return [trial(cfg.task, v, publish_as=v) for v in cells]


def _seeds(cfg: StudyConfig) -> list[dict]:
    root = paths.runs_dir() / cfg.task / "seeds"
    return [trial(cfg.task, v, seed=s, split_seed=s if cfg.vary_split else 0, out_dir=str(root / f"seed{s}" / v))
            for s in cfg.seeds for v in cfg.variants or seeds.SeedsConfig.variants]


def _presets(module: str, name: str, variant: str):
    def trials(cfg: StudyConfig) -> list[dict]:
        try:
            presets = getattr(tasks.module(cfg.task, f"searches.{module}"), name)
        except ModuleNotFoundError:
            raise ConfigError(f"--study: task {cfg.task} has no {cfg.task}/searches/{module}.py") from None
        return [trial(cfg.task, variant, p) for p in presets]
    return trials


def _wave(cfg: StudyConfig) -> list[dict]:
    try:
        wave = tasks.module(cfg.task, "searches.wave").WAVE
    except ModuleNotFoundError:
        raise ConfigError(f"--study wave: task {cfg.task} has no {cfg.task}/searches/wave.py") from None
    return [trial(cfg.task, **t) for t in wave]  # (variant, preset, publish_as, fields)


def _smoke(cfg: StudyConfig) -> list[dict]:
    """Two short runs of the smoke preset: the resume test and the Ray benchmark."""
    fields = {"epochs": cfg.epochs} if cfg.epochs else {}
    return [trial(cfg.task, v, "smoke", **fields) for v in ("baseline", "trecx")]


# name -> (its trials, what tabulates it)
STUDIES = {
    "exit_study": _exit_study,
    "seeds": _seeds,
    "distill_search": _presets("distill", "DISTILL_SEARCH", "trecx"),
    "recipe_search": _presets("recipe", "SEARCH", "baseline"),
    "wave": _wave,
    "smoke": _smoke,
}


def train_trial(config: dict) -> None:
    """The trainable: one `<task>.train` run (resumed from its run folder), reporting the kept epoch."""
    from ray import tune as ray_tune

    t = config["trial"]
    cfg = train.preset(t["task"], t["preset"], variant=t["variant"], threads=config["threads"], publish=False,
                       **t["fields"])
    folder = train.run(cfg)
    saved, epochs = search.read(folder)
    kept = search.kept_epoch(saved, epochs)
    ray_tune.report({k: float(v) for k, v in kept.items() if _number(v)} | {"run": str(folder)})


def _number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def read(cfg: StudyConfig) -> None:
    """The study's reader: its CSV and figures from the finished runs."""
    if cfg.study == "exit_study":
        test.run(test.TestConfig(task=cfg.task))
        exit_study.run(exit_study.StudyConfig(task=cfg.task))
    elif cfg.study == "seeds":
        seeds.run(seeds.SeedsConfig(task=cfg.task, seeds=cfg.seeds, vary_split=cfg.vary_split, publish_seed=0,
                                    threads=cfg.threads, variants=cfg.variants or seeds.SeedsConfig.variants))
    elif cfg.study == "distill_search":
        distill_search.run(distill_search.DistillSearchConfig(task=cfg.task))
    elif cfg.study == "recipe_search":
        module = tasks.module(cfg.task, "recipe_search")
        module.run(module.SearchConfig())


def _publisher(task: str):
    """What the driver does as each trial finishes: copy its model to pretrained/<task>/."""

    def publish(trial: dict, reported: dict) -> None:
        if trial["publish_as"] and reported.get("run"):
            log.info("published %s", runs.publish(Path(reported["run"]), task, trial["publish_as"]))

    return publish


def pack(cfg: StudyConfig, trials: list[dict]) -> Path:
    """The study's Ray state and its trials' run folders in one archive, paths relative to the runs folder:
    on another machine, `tar xzf FILE -C $TRECX_RUNS` (default: runs/) and the same command carries on."""

    root = paths.runs_dir().resolve()
    state = tune.storage_dir(tune.Where(storage=cfg.storage)) / (cfg.name or f"{cfg.task}_{cfg.study}")
    folders = [state] + [train.run_folder(train.preset(t["task"], t["preset"], variant=t["variant"], **t["fields"]))
                         for t in trials]
    outside = [f for f in folders if not f.resolve().is_relative_to(root)]
    if outside:
        raise ConfigError(f"--pack: {outside[0]} is outside the runs folder {root}: pack with the default --storage")
    out = Path(cfg.pack)
    with files.atomic(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for f in folders:
            if f.exists():
                tar.add(f, arcname=str(f.resolve().relative_to(root)))
    log.info("packed %d folders into %s: on the next machine, tar xzf %s -C %s", sum(f.exists() for f in folders),
             out, out, "$TRECX_RUNS (or runs/)")
    return out


def run(cfg: StudyConfig) -> list[dict]:
    """Train every trial of the study (carrying on an interrupted one), publish, read; returns the trials'
    results."""
    tasks.get(cfg.task)
    if cfg.study not in STUDIES:
        raise ConfigError(f"--study: unknown study '{cfg.study}'; known: {', '.join(STUDIES)}")
    trials = STUDIES[cfg.study](cfg)
    if cfg.pack:
        pack(cfg, trials)
        return []
    where = tune.Where(cfg.address, cfg.storage, cfg.threads, cfg.max_concurrent, cfg.dashboard)
    dataset = tasks.get(cfg.task).dataset
    results = tune.run(cfg.name or f"{cfg.task}_{cfg.study}", trials, train_trial, where, restart=cfg.restart,
                       extra={"threads": cfg.threads}, on_complete=_publisher(cfg.task) if cfg.publish else None,
                       needed=[paths.data_dir().resolve() / dataset] if dataset else None)
    for r in results:  # a trial finished before an interruption was published then; again is harmless
        if cfg.publish and r["trial"]["publish_as"] and r.get("run"):
            runs.publish(Path(r["run"]), cfg.task, r["trial"]["publish_as"])
    if cfg.read and cfg.study != "smoke":
        read(cfg)
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(StudyConfig, None, argv, description=__doc__, required=("study", "task")))
