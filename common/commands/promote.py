"""Ship the best design of ours beside the paper's `trecx`, chosen on validation only:

    python -m common promote --task image_classification --candidates trecx_sd trecx_dwfirst --ship-as trecx_plus
    python -m common promote --task keyword_spotting --candidates trecx2_ee1_ee3 trecx2_ee1_ee2 --ship-as trecx2 \
        --paper "" --vector true      # two-exit designs, on their cut with a threshold per exit

Every candidate (and `trecx`) must be in pretrained/<task>/ and tested (`<task>.test` wrote
results/<task>/<variant>/summary.json); `studies.promote` says how the winner is chosen and shipped.
Then run `<task>.test` again for its rows and curves, and `python -m common deploy --variant <ship-as>`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .. import files, paths, tasks
from ..config import parse
from ..edge.costs import cost_vector
from ..errors import ConfigError
from ..models import registry
from ..models.contract import load_model
from ..studies.promote import PAPER, choose, margin, ship

log = logging.getLogger("trecx.promote")


@dataclass
class PromoteConfig:
    """Options of `python -m common promote`."""

    task: str = ""  # image_classification, keyword_spotting or visual_wake_words
    candidates: tuple[str, ...] = ()  # designs of ours, each a tested pretrained/<task>/<variant>.keras
    ship_as: str = "trecx_plus"  # the name the winner ships under
    models_dir: str = ""  # "" = pretrained/<task>
    results_dir: str = ""  # "" = results/<task>
    paper: str = PAPER  # the paper's configuration, in the race too (nothing ships if it wins); "" = none
    vector: bool = False  # compare the cuts with a threshold per early exit (models with several early exits)
    cost: str = "flops"  # compare cuts in FLOPs, or in a device's instructions ("cortex-m4/cmsis_nn")
    data_dir: str = ""  # datasets root (a device cost calibrates each model's int8 graphs on training inputs)
    split_seed: int = 0
    incumbent: str = ""  # what the winner must beat beyond noise to replace ("" = what --ship-as ships now, else
    #                      --paper)


def run(cfg: PromoteConfig) -> str:
    """Choose and ship; returns the winner's name."""
    tasks.get(cfg.task)
    if not cfg.candidates:
        raise ConfigError("--candidates: name at least one design to compare with trecx")
    results = Path(cfg.results_dir or paths.results_dir() / cfg.task)
    variants = [*([cfg.paper] if cfg.paper else []), *cfg.candidates]
    models = Path(cfg.models_dir or paths.pretrained_dir(cfg.task))
    device = None if cfg.cost == "flops" else device_costs(cfg, variants, models)
    baseline = tasks.get(cfg.task).baseline
    best, cuts = choose(results, variants, cfg.vector, device, baseline)
    unit = "FLOPs" if device is None else f"{cfg.cost} instruction"
    for v, c in cuts.items():
        log.info("%s: %s", v, "no rho within 1 point" if c is None else f"{c:.1f}% {unit} cut on validation")
    shipped = models / f"{cfg.ship_as}.config.json"
    incumbent = cfg.incumbent or (json.loads(shipped.read_text()).get("shipped_from") if shipped.exists()
                                  else cfg.paper or None)
    decision = {"task": cfg.task, "ship_as": cfg.ship_as, "winner_on_validation": best, "incumbent": incumbent,
                "validation_cut_pct": cuts, "unit": unit}
    shipped, why, chosen_by = best, "the highest validation cut", ""
    if incumbent and incumbent != best and incumbent in variants:
        ci = margin(results, best, incumbent, baseline, cfg.vector, device)
        decision |= {"margin_ci95_points": ci, "beyond_noise": ci[0] > 0}
        if ci[0] > 0:
            why += f", beyond its noise over {incumbent}"
        else:  # the winner's margin is within its own noise: the incumbent stays (or comes back)
            shipped = incumbent
            why = (f"{best}'s validation margin over {incumbent} is within its noise (95% paired interval "
                   f"{ci[0]:.2f} to {ci[1]:.2f} points): {incumbent} stays")
            chosen_by = (f"the incumbent: {best}'s validation margin over it is within its noise "
                         f"(promote/{cfg.ship_as}.json)")
            log.info(why)
    ship(models, shipped, cfg.ship_as, cfg.paper, cfg.vector, cfg.cost, cuts, why=chosen_by)
    files.write_json(results / "promote" / f"{cfg.ship_as}.json", decision | {"shipped": shipped, "why": why})
    return shipped


def device_costs(cfg: PromoteConfig, variants: list[str], models: Path) -> dict[str, tuple[list[float], float]]:
    """Each variant's millions of instructions per exit on the device and the baseline's (`edge.costs`:
    profiled firmware runs, cached), the int8 graphs calibrated on training inputs as `deploy` does."""

    task = tasks.get(cfg.task)
    x = task.load(cfg.data_dir, cfg.split_seed).int8_samples(200)
    base_cost = cost_vector(registry.baseline_model(task, models), cfg.cost, x)[-1]
    out = {}
    for i, v in enumerate(variants):
        log.info("%s (%d/%d): instructions per exit on %s (a profiled firmware run, cached)", v, i + 1,
                 len(variants), cfg.cost)
        out[v] = (cost_vector(load_model(models / f"{v}.keras"), cfg.cost, x), base_cost)
    return out


def main(argv: list[str] | None = None) -> str:
    return run(parse(PromoteConfig, None, argv, description=__doc__, required=("task",)))
