"""Run folders: where a run lives, whether an existing folder may be resumed, and publishing a finished
run to pretrained/.

A run folder holds: backup/ (BackupAndRestore, so a killed run resumes from its last epoch),
best.keras (best joint validation loss; for one-exit models, best validation accuracy), log.csv,
config.json, versions.json and, once finished, done.json.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .. import files, paths
from ..config import NOT_RECIPE, TrainConfig, record
from ..errors import ConfigError

log = logging.getLogger("trecx.train")


def run_dir(cfg: TrainConfig, task: str) -> Path:
    """runs/<task>/<preset>/<variant>[_seed<k>] unless --out-dir says otherwise: presets and seeds never
    share a folder (seed 0 keeps the plain name of the runs trained before seeds were told apart)."""
    if cfg.out_dir:
        return Path(cfg.out_dir)
    return paths.runs_dir() / task / cfg.preset / (cfg.variant + (f"_seed{cfg.seed}" if cfg.seed else ""))


def recipe_changes(cfg: TrainConfig, saved: dict) -> list[str]:
    """The recipe fields whose value in an existing run's config.json differs from `cfg` (a field
    the run did not record counts as its default then)."""
    defaults = record(type(cfg)())
    return [k for k, v in record(cfg).items() if k not in NOT_RECIPE and saved.get(k, defaults[k]) != v]


def check_resume(cfg: TrainConfig, out: Path) -> None:
    """Refuse to resume, reuse or publish a run trained with another recipe than the one asked for."""
    if cfg.restart and out.exists():
        shutil.rmtree(out)
    saved = out / "config.json"
    if not saved.exists():
        return
    changed = recipe_changes(cfg, json.loads(saved.read_text()))
    if changed:
        was = json.loads(saved.read_text())
        diff = ", ".join(f"{k}: {was.get(k)!r} -> {getattr(cfg, k)!r}" for k in changed)
        raise ConfigError(f"run folder {out} was trained with other options ({diff}); "
                          "use --restart true to train it again, or --out-dir for a new run")


def already_published(cfg: TrainConfig, task: str, out: Path) -> bool:
    """True when `--publish` asks for a model that pretrained/ already holds from this very recipe and
    this machine has no run folder of it (a queue started again on a new machine): training it again
    would only replace it by a rerun. `--restart true` trains it anyway."""
    saved = paths.pretrained_dir(task) / f"{cfg.publish_as or cfg.variant}.config.json"
    if not cfg.publish or cfg.restart or out.exists() or not saved.exists():
        return False
    if recipe_changes(cfg, json.loads(saved.read_text())):
        return False
    log.info(f"{saved.with_suffix('').with_suffix('.keras')} was published from this recipe already: "
             "nothing to train (--restart true trains it again)")
    return True


def publish(run: Path, task: str, variant: str, sub: str = "") -> Path:
    """Copy a run's best model, config and log to pretrained/<task>/[<sub>/]<variant>.*; the config's
    paths are recorded portably (a run folder started by older code may hold machine paths)."""
    dest = paths.pretrained_dir(task) / sub
    for name, target in (("best.keras", f"{variant}.keras"), ("log.csv", f"{variant}.log.csv"),
                         ("versions.json", f"{variant}.versions.json")):
        if (run / name).exists():
            with files.atomic(dest / target) as tmp:
                shutil.copy(run / name, tmp)
    if (run / "config.json").exists():
        files.write_json(dest / f"{variant}.config.json", record(json.loads((run / "config.json").read_text())))
    return dest / f"{variant}.keras"


# An epoch that ran over PAUSED times the run's median and over PAUSED_S seconds longer was stopped
# (SIGSTOP, a sleeping machine), not training; a first epoch (tracing, data caches) or the first
# epoch of a joint phase (a new graph) may legitimately take several times the median, so both hold.
PAUSED, PAUSED_S = 10.0, 600.0


def epoch_seconds(epochs: list[dict]) -> tuple[float, int]:
    """Wall seconds of all epochs, and how many of them were counted at the run's median instead
    because the process was stopped during them (see PAUSED)."""
    secs = sorted(float(e["epoch_seconds"]) for e in epochs if e.get("epoch_seconds"))
    if not secs:
        return 0.0, 0
    median = secs[len(secs) // 2]
    paused = [s for s in secs if s > PAUSED * median and s - median > PAUSED_S]
    return sum(secs) - sum(paused) + median * len(paused), len(paused)


def threads(cfg: dict) -> int:
    """The threads a run trained on: its config's, or 2 (the whole machine) when it used them all or
    recorded none."""
    return cfg.get("threads") or 2


def cpu_minutes(cfg: dict, epochs: list[dict]) -> float:
    """Wall time of all epochs (paused ones at the median) times the run's threads."""
    return round(epoch_seconds(epochs)[0] * threads(cfg) / 60, 1)
