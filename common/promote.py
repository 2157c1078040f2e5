"""Ship the best design of ours beside the paper's `trecx`, chosen on validation only:

    python -m common.promote --task image_classification --candidates trecx_sd trecx_dwfirst --ship-as trecx_plus

Every candidate (and `trecx`) must be in pretrained/<task>/ and tested (`<task>.test` wrote
results/<task>/<variant>/summary.json). The one with the highest FLOPs cut at <= 1 point below the
baseline on the validation split wins; if that is `trecx` itself nothing is shipped (and a stale
`--ship-as` file is left alone, with a warning), else its files are copied to
pretrained/<task>/<ship-as>.*, the config saying what it is and why. Then run `<task>.test` again
for its rows and curves, and `common.deploy --variant <ship-as>`.
`common.exit_study --publish-best` makes the same choice.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from common import files, paths, tasks
from common.config import parse
from common.errors import ConfigError

log = logging.getLogger("trecx.promote")
PAPER = "trecx"  # the paper's configuration: what a design of ours must beat


def val_cut(summary: dict) -> float | None:
    """The FLOPs cut (%) on validation at the first trade-off (<= 1 point below the baseline), or None
    when no rho keeps validation accuracy within it."""
    t, base = summary["tradeoffs"][0], summary["baseline"]["mflops"]
    return None if t.get("val_mflops") is None else 100 * (1 - t["val_mflops"] / base)


def choose(results: Path, variants: list[str]) -> tuple[str, dict[str, float | None]]:
    """The variant with the highest validation FLOPs cut (ties go to the first listed), and every cut."""
    cuts = {}
    for v in variants:
        p = results / v / "summary.json"
        if not p.exists():
            raise ConfigError(f"{p} not found: run the task's test.py with pretrained/<task>/{v}.keras first")
        cuts[v] = val_cut(json.loads(p.read_text()))
    best = max(variants, key=lambda v: -float("inf") if cuts[v] is None else cuts[v])
    return best, cuts


def ship(models: Path, variant: str, name: str) -> bool:
    """Copy the files of `variant` to <name>.*, its config saying what it is and why it was chosen;
    nothing when the paper's configuration won."""
    if variant == PAPER:
        log.info("the paper's configuration measured best on validation: nothing shipped as %s", name)
        if (models / f"{name}.keras").exists():
            log.warning("%s is from an earlier choice and no longer beats %s: delete it", models / f"{name}.keras",
                        PAPER)
        return False
    for suffix in (".keras", ".log.csv", ".versions.json"):
        if (models / f"{variant}{suffix}").exists():
            with files.atomic(models / f"{name}{suffix}") as tmp:
                shutil.copy(models / f"{variant}{suffix}", tmp)
    cfg = json.loads((models / f"{variant}.config.json").read_text())
    files.write_json(models / f"{name}.config.json", cfg | {
        "shipped_as": name, "shipped_from": variant,
        "chosen_by": "highest FLOPs cut at <= 1 point below the baseline on the validation split"})
    log.info("shipped %s as %s", variant, models / f"{name}.keras")
    return True


@dataclass
class PromoteConfig:
    """Options of common.promote."""

    task: str = "image_classification"  # image_classification, keyword_spotting or visual_wake_words
    candidates: tuple[str, ...] = ()  # designs of ours, each a tested pretrained/<task>/<variant>.keras
    ship_as: str = "trecx_plus"  # the name the winner ships under
    models_dir: str = ""  # "" = pretrained/<task>
    results_dir: str = ""  # "" = results/<task>


def main(argv: list[str] | None = None) -> str:
    cfg = parse(PromoteConfig, {"default": PromoteConfig()}, argv, description=__doc__)
    tasks.get(cfg.task)
    if not cfg.candidates:
        raise ConfigError("--candidates: name at least one design to compare with trecx")
    results = Path(cfg.results_dir or paths.results_dir() / cfg.task)
    best, cuts = choose(results, [PAPER, *cfg.candidates])
    for v, c in cuts.items():
        log.info("%s: %s", v, "no rho within 1 point" if c is None else f"{c:.1f}% FLOPs cut on validation")
    ship(Path(cfg.models_dir or paths.pretrained_dir(cfg.task)), best, cfg.ship_as)
    return best


if __name__ == "__main__":
    from common import cli

    cli.run(main)
