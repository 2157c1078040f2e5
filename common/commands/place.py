"""Where to put the exits of a network for a device: the placement search (`studies.placement`) on a task's
baseline or on your own .keras.

    python -m common place --task visual_wake_words --cost cortex-m4/cmsis_nn
    python -m common place --model my_cnn.keras --data my_data.npz --cost cortex-m4/cmsis_nn --out-dir placed/

A cheap head is trained on the frozen backbone after every candidate layer, one probe per width; every
position, and every ordered pair and triple of the best `--beam` heads, is scored by its cut in FLOPs and in the
device's instructions at each budget, with rho chosen on the calibration split (validation) or certified there.
--data: an .npz with train_x, train_y, cal_x, cal_y (and test_x, test_y: reported, never used to choose).
Writes placement.csv (the ranking), placement_heads.csv, placement_layers.csv (each operator's measured
instructions: what `python -m common costmodel` fits its table on), placement.json (the config, the cost
sources, the best candidates, where the FLOPs and instruction rankings disagree, the CPU time), placement.png,
and the calibration benefit curves of the best candidates with 1, 2 and 3 exits in the device's instructions
(placement_curves/, placement_curves.png). The winner is then trained jointly (docs/placement.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import files, paths, tasks
from ..config import parse, versions
from ..edge.costmodel import parse as parse_cost
from ..errors import ConfigError, DataError
from ..evaluation import plots
from ..files import write_csv
from ..models import registry
from ..models.contract import load_model
from ..models.taps import WIDTHS
from ..reporting import placement as targets
from ..studies import placement
from ..studies import plots as study_plots
from ..train.distribute import set_threads
from .train import preset

log = logging.getLogger("trecx.place")


@dataclass
class PlaceConfig:
    """Options of `python -m common place`."""

    task: str = ""  # a task: its baseline, training data and validation split (calibration); or --model
    model: str = ""  # your baseline classifier (.keras), with --data
    data: str = ""  # .npz: train_x, train_y, cal_x, cal_y (test_x, test_y optional, reported only)
    models_dir: str = ""  # the task's baseline: "" = pretrained/<task> (or the MLPerf reference)
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    split_seed: int = 0  # the task's data split
    out_dir: str = ""  # "" = results/<task>
    cost: str = "cortex-m4/cmsis_nn"  # the device (<cpu>/<kernels>[:estimate]) or flops; FLOPs are always scored
    widths: tuple[str, ...] = ("none", "1x", "2x")  # head widths: its 1x1 conv in channels of the tap
    ks: tuple[int, ...] = (1, 2, 3)  # numbers of exits scored
    budgets: tuple[float, ...] = (1.0, 2.0, 3.0)  # accuracy budgets, points below the baseline
    delta: float = 0.05  # the certified rule's allowed probability of breaking the budget
    epochs: int = 10  # epochs of head training per probe
    steps_per_epoch: int = 0  # 0 = the whole training split per epoch
    batch_size: int = 64
    lr: float = 3e-3  # Adam's rate for the heads
    beam: int = 8  # pairs and triples among this many best single heads
    kernel: int = 2  # the heads' depthwise kernel
    cost_samples: int = 64  # training inputs that calibrate the int8 probes for the device cost
    threads: int = 1  # TensorFlow's CPU threads (two runs side by side beat one on two threads)
    seed: int = 0  # seeds the heads' initial weights and the data order


def _threads(n: int) -> None:
    import tensorflow as tf

    if n and tf.config.threading.get_intra_op_parallelism_threads() != n:
        try:
            set_threads(n)
        except RuntimeError:  # TensorFlow already ran in this process (place called from Python): keep its threads
            log.info("TensorFlow has started: --threads %d not applied", n)


def _batches(x: np.ndarray, y: np.ndarray, batch: int):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(batch).prefetch(2)


def inputs(cfg: PlaceConfig):
    """(baseline, training batches, calibration (x, y), test (x, y) or None, training inputs for int8, where)."""
    if cfg.task:

        task = tasks.get(cfg.task)
        base = registry.baseline_model(task, Path(cfg.models_dir or paths.pretrained_dir(task.name)))
        train_cfg = preset(task.name, data_dir=cfg.data_dir, split_seed=cfg.split_seed, batch_size=cfg.batch_size)
        train_ds, _, _ = task.train_data(train_cfg)
        data = task.load(cfg.data_dir, cfg.split_seed)
        return (base, train_ds, data.splits["val"], data.splits["test"], data.int8_samples(cfg.cost_samples),
                {"task": task.name, "baseline": task.baseline, "data": data.info})
    path = Path(cfg.data)
    if not path.exists():
        raise DataError(f"--data {path} not found (an .npz with train_x, train_y, cal_x, cal_y)")
    arrays = np.load(path)
    missing = [k for k in ("train_x", "train_y", "cal_x", "cal_y") if k not in arrays]
    if missing:
        raise DataError(f"--data {path} lacks {', '.join(missing)}")
    test = (arrays["test_x"], arrays["test_y"]) if "test_x" in arrays else None
    x = arrays["train_x"].astype("float32")
    return (load_model(Path(cfg.model)), _batches(x, arrays["train_y"], cfg.batch_size),
            (arrays["cal_x"].astype("float32"), arrays["cal_y"]), test, x[:cfg.cost_samples],
            {"model": paths.portable(cfg.model), "data": paths.portable(path)})


def disagreement(ranking: list[dict], device: str) -> dict:
    """Where ranking by FLOPs and by the device's instructions part ways: for each number of exits, rule and
    budget, each ranking's winner with its cut in both bases (what choosing by FLOPs costs in instructions),
    and the rank correlation of the two over the single exits at the first budget (validation rule)."""
    if device == "flops":
        return {}
    key = lambda r: (r["taps"], r["widths"])  # noqa: E731
    cut = {(r["cost"], r["rule"], r["budget_points"], key(r)): r["cut_pct"] for r in ranking}
    rows = []
    for k, rule, budget in sorted({(r["k"], r["rule"], r["budget_points"]) for r in ranking}):
        row = {"k": k, "rule": rule, "budget_points": budget}
        for c in ("flops", device):
            mine = [r for r in ranking if (r["cost"], r["k"], r["rule"], r["budget_points"]) == (c, k, rule, budget)
                    and r["cut_pct"] is not None]
            best = max(mine, key=lambda r: r["cut_pct"]) if mine else None
            name = "flops" if c == "flops" else "instructions"
            row[f"best_by_{name}"] = None if best is None else f"{best['taps']} ({best['widths']})"
            row[f"best_by_{name}_flops_cut_pct"] = None if best is None else cut.get(("flops", rule, budget, key(best)))
            row[f"best_by_{name}_instruction_cut_pct"] = None if best is None else cut.get((device, rule, budget,
                                                                                             key(best)))
        row["agree"] = row["best_by_flops"] == row["best_by_instructions"]
        rows.append(row)
    budget = min(r["budget_points"] for r in ranking)
    singles = {c: {key(r): r["cut_pct"] or -100 for r in ranking if r["cost"] == c and r["k"] == 1
                   and r["rule"] == "validation" and r["budget_points"] == budget} for c in ("flops", device)}
    both = [k for k in singles["flops"] if k in singles[device]]
    rank = lambda v: np.argsort(np.argsort(-np.asarray(v)))  # noqa: E731
    rho = (float(np.corrcoef(rank([singles["flops"][k] for k in both]), rank([singles[device][k] for k in both]))
                 [0, 1]) if len(both) > 2 else None)
    return {"single_exit_rank_correlation": rho, "budget_points": budget, "winners": rows,
            "disagree": [r for r in rows if not r["agree"]]}


def run(cfg: PlaceConfig) -> placement.Placement:
    """Search, then write the files (module docstring); returns the placement."""
    if bool(cfg.task) == bool(cfg.model) or (cfg.model and not cfg.data):
        raise ConfigError("give --task, or --model with --data")

    parse_cost(cfg.cost)  # a bad option fails in one line before any data is read
    if not set(cfg.widths) <= set(WIDTHS):
        raise ConfigError(f"--widths: each one of {', '.join(WIDTHS)}, got {' '.join(cfg.widths)}")
    _threads(cfg.threads)
    out = Path(cfg.out_dir or paths.results_dir() / cfg.task) if (cfg.task or cfg.out_dir) else Path("placement")
    base, train_ds, cal, test, cost_x, where = inputs(cfg)
    result = placement.place(base, train_ds, cal, test, ks=tuple(cfg.ks), cost=cfg.cost, widths=tuple(cfg.widths),
                             cost_x=cost_x, epochs=cfg.epochs, steps=cfg.steps_per_epoch or None,
                             budgets=tuple(cfg.budgets), delta=cfg.delta, beam=cfg.beam, kernel=cfg.kernel, lr=cfg.lr,
                             seed=cfg.seed)
    write_csv(out / "placement.csv", result.ranking)
    write_csv(out / "placement_heads.csv", result.heads)
    if result.layers:
        write_csv(out / "placement_layers.csv", [r | {"source": where.get("task", where.get("model"))}
                                                  for r in result.layers])
    best = {f"{c} {rule} {b:g}": result.best(c, rule, b) for c in result.costs for rule in placement.RULES
            for b in cfg.budgets}
    files.write_json(out / "placement.json", {
        "config": asdict(cfg), "inputs": where, "versions": versions(), "cost_sources": result.costs,
        "note": result.note, "cpu_seconds": result.cpu_seconds, "cpu_minutes": result.cpu_seconds / 60,
        "calibration_samples": len(cal[1]), "test_samples": None if test is None else len(test[1]),
        "test_note": "test cuts are reported, never used to choose", "best": best,
        "disagreement": disagreement(result.ranking, cfg.cost)})

    name = where.get("task", Path(cfg.model).stem)
    study_plots.exit_placement(result.ranking, out / "placement.png", cfg.budgets[0],
                               title=f"{name}: one exit, {cfg.budgets[0]:g}-point budget")
    curve_files = {}
    for label, rows in result.curves.items():
        curve_files[label] = out / "placement_curves" / f"{label.split()[0]}_exits.csv"
        write_csv(curve_files[label], rows)
    if curve_files:
        device = cfg.cost != "flops"
        plots.benefit_curves(curve_files, out / "placement_curves.png", column="minstructions" if device else "mflops",
                             unit=f"M instructions on {cfg.cost}" if device else "MFLOPs",
                             title="best candidates, calibration split (heads on the frozen backbone)")
    if out.parent == paths.results_dir():  # a task's own search: the targets follow its files

        targets.write(out.parent)
    log.info("placement: %.1f CPU-minutes; written to %s", result.cpu_seconds / 60, paths.portable(out))
    for c in result.costs:
        b = result.best(c, "validation", cfg.budgets[0])
        if b:
            log.info("best in %s: after %s (%s), cut %.1f%% on calibration", c, b["taps"], b["widths"], b["cut_pct"])
    return result


def main(argv: list[str] | None = None) -> placement.Placement:
    return run(parse(PlaceConfig, None, argv, description=__doc__))
