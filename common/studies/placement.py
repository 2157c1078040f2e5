"""Where exits should go on a given network and device: a cheap exit head trained on the frozen backbone at every
candidate tap (post-training, one probe model per width), every position and every ordered pair and triple scored
by the cut they give in a cost basis (FLOPs, or a device's instructions: `edge.costmodel`) at an accuracy budget,
under two threshold rules: the cheapest rho within the budget on the calibration split ("validation"), and the
rho certified there (`evaluation.calibrate`, "certified"). The winner is then trained jointly
(`train.training.train_exit`) and its own int8 graphs certified and checked on the board (docs/placement.md).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os

import keras
import numpy as np

from ..edge import costmodel
from ..edge.export import export_segments
from ..edge.sources import MAX_SEGMENTS
from ..errors import ModelError
from ..evaluation import calibrate, sweep
from ..evaluation.evaluate import exit_probs
from ..models import contract, flops
from ..models.attach import attach_exit
from ..models.graph import functional
from ..models.taps import candidate_taps, check_widths, pointwise
from ..train.training import compile_model, keyed

log = logging.getLogger("trecx.placement")
RULES = ("validation", "certified")


@dataclasses.dataclass
class Placement:
    """What `place` found: every head (tap x width) and every ranked candidate, and what it cost to find."""

    heads: list[dict]  # one per (tap, width): its calibration accuracy and what it adds in each cost basis
    ranking: list[dict]  # one per candidate x cost basis x rule x budget, best cut first within each
    costs: dict[str, str]  # cost basis -> where its numbers come from (measured or estimated)
    cpu_seconds: float  # CPU time of the whole search (training, outputs, firmware builds and runs, scoring)
    layers: list[dict] = dataclasses.field(default_factory=list)  # each probe operator's measured instructions
    curves: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # best candidates' calibration curves
    note: str = ("heads trained on the frozen backbone; scores use the probes' float outputs on the calibration "
                 "split; the deployed model is trained jointly and certified again on its own int8 graphs")
    data_read: dict = dataclasses.field(default_factory=lambda: {
        "train_ds": "trained the probe heads", "cal": "scored the candidates and chose the placement: it cannot "
        "certify the placed model's thresholds", "test": "reported only, never used to choose"})

    def best(self, cost: str, rule: str = "validation", budget: float = 1.0, k: int | None = None) -> dict | None:
        """The candidate with the largest cut in `cost` under `rule` at `budget` (and `k` exits); None when none
        cuts anything: a placement that costs more than its baseline is never offered as the best."""
        rows = [r for r in self.ranking if r["cost"] == cost and r["rule"] == rule and r["budget_points"] == budget
                and (k is None or r["k"] == k) and r["cut_pct"] is not None and r["cut_pct"] > 0]
        return max(rows, key=lambda r: r["cut_pct"]) if rows else None


def _train_probe(probe: keras.Model, train_ds, epochs: int, steps: int | None, lr: float) -> None:

    names = contract.exit_names(probe)
    for layer in probe.layers:  # the heads alone: the backbone and the final classifier are the baseline's
        layer.trainable = contract.is_head(layer.name)
    compile_model(probe, {n: 1.0 for n in names[:-1]} | {contract.FINAL: 0.0}, keras.optimizers.Adam(lr))
    if steps and hasattr(train_ds, "repeat"):  # epochs of `steps` batches: never run out of data
        train_ds = train_ds.repeat()
    probe.fit(keyed(train_ds, names), epochs=epochs, steps_per_epoch=steps, verbose=2)


def _backbone_and_heads(per_segment: list[list[dict]]) -> tuple[np.ndarray, np.ndarray, float]:
    """From a probe's per-segment operator costs: the backbone's cost to each tap (cumulative), each head's own,
    and the whole backbone's (millions)."""
    back = np.array([sum(r["instructions"] for r in s if r["part"] == "backbone") for s in per_segment]) / 1e6
    head = np.array([sum(r["instructions"] for r in s if r["part"] == "head") for s in per_segment]) / 1e6
    return np.cumsum(back)[:-1], head[:-1], float(back.sum())


def probe_heads(model: keras.Model, taps: list[str], width: str, train_ds, cal: tuple, test: tuple | None,
                cost_x: np.ndarray, cost: costmodel.Cost, epochs: int, steps: int | None, kernel: int,
                lr: float) -> tuple[list[dict], dict[str, str], list[dict]]:
    """One probe (a head of `width` after every tap) trained on the frozen backbone; per head its outputs and
    costs: the backbone to its tap and the head itself, in MFLOPs and (a device `cost`) instructions."""
    copy, addresses = functional(model, share=False)
    probe = attach_exit(model, taps, pointwise=pointwise(model, taps, [width] * len(taps)), kernel=kernel,
                        ev_assist=False)
    _train_probe(probe, train_ds, epochs, steps, lr)
    names = contract.exit_names(probe)
    out_cal = exit_probs(probe, cal[0])
    out_test = exit_probs(probe, test[0]) if test is not None else None
    costs = flops.exit_costs(probe)
    final_flops = flops.path_mflops(copy, [copy.layers[-1].name])
    heads = []
    for i, (tap, name) in enumerate(zip(taps, names[:-1], strict=True)):
        back = flops.path_mflops(copy, [addresses.get(tap, tap)])
        heads.append({"tap": tap, "position": i, "width": width, "name": name,
                      "flops_backbone": back, "flops_head": costs[name]["mflops_alone"] - back,
                      "flops_final": final_flops, "cal": out_cal[i], "test": None if out_test is None else out_test[i],
                      "cal_final": out_cal[-1], "test_final": None if out_test is None else out_test[-1],
                      "exit_accuracy": float((out_cal[i].argmax(1) == cal[1]).mean())})
    sources, measured = {costmodel.FLOPS: "the Keras FLOPs counter (common.models.flops)"}, []
    if cost.cpu:
        measured = _device_costs(probe, names[:-1], heads, cost_x, cost, sources)
    return heads, sources, measured


def _device_costs(probe: keras.Model, names: list[str], heads: list[dict], cost_x: np.ndarray,
                  cost: costmodel.Cost, sources: dict[str, str]) -> list[dict]:
    """Each head's device costs (backbone to its tap, the head, the whole backbone), from the trained probe's int8
    graphs profiled a few exits at a time (a firmware holds at most MAX_SEGMENTS segments); returns the
    measured operators (none when estimated)."""

    measured = []
    for start in range(0, len(names), MAX_SEGMENTS - 1):
        chunk = names[start:start + MAX_SEGMENTS - 1]
        sub = keras.Model(probe.inputs, {n: probe.output[n] for n in [*chunk, contract.FINAL]})
        per_segment, sources[cost.name] = costmodel.segment_costs(export_segments(sub, cost_x), cost_x[:4], cost)
        back, head, total = _backbone_and_heads(per_segment)
        for h, b, c in zip(heads[start:], back, head, strict=False):
            h |= {"device_backbone": float(b), "device_head": float(c), "device_final": total}
        if sources[cost.name].startswith("measured"):
            measured += [r | {"graph": f"{probe.name} {chunk[0]}..{chunk[-1]} segment {i}"}
                         for i, s in enumerate(per_segment) for r in s]
    whole = float(np.mean([h["device_final"] for h in heads]))  # each chunk's runs differ by its segments' calls
    for h in heads:
        h["device_final"] = whole
    return measured


def _cumulative(chosen: list[dict], basis: str) -> list[float]:
    """Cost to leave at each exit of a candidate (its backbone to the tap and every head run so far), and at
    the final exit (the whole backbone and every head)."""
    heads = np.cumsum([h[f"{basis}_head"] for h in chosen])
    return [h[f"{basis}_backbone"] + c for h, c in zip(chosen, heads, strict=True)] + \
        [chosen[0][f"{basis}_final"] + float(heads[-1])]


def score(chosen: list[dict], cal_y: np.ndarray, test_y: np.ndarray | None, basis: str, rule: str, budget: float,
          delta: float) -> dict:
    """The cut one candidate gives in one cost basis under one rule at `budget` points, on the calibration
    split (where the threshold was chosen) and on test (reported only)."""
    probs = [h["cal"] for h in chosen] + [chosen[0]["cal_final"]]
    costs = _cumulative(chosen, basis)
    base_cost = chosen[0][f"{basis}_final"]
    right = probs[-1].argmax(1) == cal_y
    if rule == "validation":
        rho = calibrate.naive_rho(probs, cal_y, costs, right, budget / 100)
    else:
        rho = calibrate.calibrate(probs, cal_y, costs, right, budget / 100, delta).rho
    row = {"rho": rho, "cut_pct": None, "cal_drop_points": None, "test_cut_pct": None, "test_drop_points": None,
           "exit_rate": None}
    if rho is None:
        return row
    s = sweep.sweep(probs, cal_y, costs, np.array([rho]))
    row |= {"cut_pct": 100 * (1 - float(s["mflops"][0]) / base_cost), "exit_rate": float(1 - s["exit_rate"][0, -1]),
            "cal_drop_points": float(100 * (right.mean() - s["accuracy"][0]))}
    if test_y is not None and chosen[0]["test"] is not None:
        tprobs = [h["test"] for h in chosen] + [chosen[0]["test_final"]]
        t = sweep.sweep(tprobs, test_y, costs, np.array([rho]))
        row |= {"test_cut_pct": 100 * (1 - float(t["mflops"][0]) / base_cost),
                "test_drop_points": 100 * (float((tprobs[-1].argmax(1) == test_y).mean()) - float(t["accuracy"][0]))}
    return row


def candidates(heads: list[dict], ks: tuple[int, ...], order: list[float], beam: int) -> list[list[dict]]:
    """Every single head, and the ordered pairs and triples (distinct taps, in order from the input) of the
    `beam` heads with the best single-exit `order` score."""
    out = [[h] for h in heads] if 1 in ks else []
    top = [heads[i] for i in np.argsort(-np.asarray(order), kind="stable")[:beam]]
    for k in (k for k in ks if k > 1):
        for combo in itertools.combinations(sorted(top, key=lambda h: (h["position"], h["width"])), k):
            if len({h["position"] for h in combo}) == k:
                out.append(list(combo))
    return out


def place(model: keras.Model, train_ds, cal: tuple, test: tuple | None = None, ks: tuple[int, ...] = (1, 2, 3),
          cost: str = "flops", widths: tuple[str, ...] = ("1x",), taps: list[str] | None = None,
          cost_x: np.ndarray | None = None, epochs: int = 5, steps: int | None = None, budgets=(1.0,),
          delta: float = 0.05, beam: int = 8, kernel: int = 2, lr: float = 3e-3, seed: int = 0) -> Placement:
    """The placement search (module docstring) on `model` (a baseline classifier): heads trained on
    `train_ds` (batched (x, y)), scored on `cal` = (x, y), reported on `test` when given; `cost_x` (training
    inputs) calibrates the int8 probes whose instructions a device `cost` measures; `seed` seeds the heads'
    initial weights and the data order. Pairs and triples are drawn from each cost basis's own `beam` best
    single heads."""
    keras.utils.set_random_seed(seed)
    start = _cpu()
    basis = costmodel.parse(cost)
    check_widths(widths)
    taps = list(taps) if taps else candidate_taps(model)
    if basis.cpu and cost_x is None:
        raise ModelError("a device cost needs cost_x: training inputs to calibrate the int8 graphs it measures")
    heads, sources, measured = [], {}, []
    for i, w in enumerate(widths):
        log.info("probe %d/%d: %d heads of width %s after %s", i + 1, len(widths), len(taps), w, ", ".join(taps))
        got, src, ops = probe_heads(model, taps, w, train_ds, cal, test, cost_x, basis, epochs, steps, kernel, lr)
        heads += got
        sources |= src
        measured += ops
    bases = [costmodel.FLOPS] + ([basis.name] if basis.cpu else [])
    col = {costmodel.FLOPS: "flops"} | ({basis.name: "device"} if basis.cpu else {})
    ranking = []
    for b in bases:
        def rows(chosen: list[dict], b: str = b) -> list[dict]:
            return [{"cost": b, "rule": rule, "budget_points": budget, "k": len(chosen),
                     "taps": " ".join(h["tap"] for h in chosen), "widths": " ".join(h["width"] for h in chosen),
                     "exit_accuracy": " ".join(f"{h['exit_accuracy']:.3f}" for h in chosen),
                     "exit_cost": " ".join(f"{c:.4g}" for c in _cumulative(chosen, col[b])[:-1]),
                     "baseline_cost": chosen[0][f"{col[b]}_final"],
                     **score(chosen, cal[1], None if test is None else test[1], col[b], rule, budget, delta)}
                    for rule, budget in itertools.product(RULES, budgets)]

        singles = [rows([h]) for h in heads]  # the beam is read off their validation cut at the first budget
        first = [next(r["cut_pct"] for r in got if r["rule"] == "validation" and r["budget_points"] == budgets[0])
                 or -1e9 for got in singles]
        pool = candidates(heads, ks, first, beam)
        log.info("scoring %d candidates in %s under %s at %s points", len(pool), b, " and ".join(RULES), budgets)
        ranking += [r for got in singles for r in got] if 1 in ks else []
        ranking += [r for chosen in pool if len(chosen) > 1 for r in rows(chosen)]
    ranking.sort(key=lambda r: (r["cost"], r["rule"], r["budget_points"], -(r["cut_pct"] or -1e9)))
    table = [{k: v for k, v in h.items() if k not in ("cal", "test", "cal_final", "test_final")} for h in heads]
    found = Placement(table, ranking, sources, _cpu() - start, measured)
    found.curves = curves(found, heads, cal[1], bases[-1], col, budgets[0])
    return found


def curves(found: Placement, heads: list[dict], cal_y: np.ndarray, basis: str, col: dict[str, str],
           budget: float) -> dict[str, list[dict]]:
    """The calibration benefit curve (rho swept) of the best candidate with 1, 2 and 3 exits in `basis`, its mean
    cost per sample in every basis scored (mflops, and minstructions for a device)."""
    out = {}
    for k in sorted({r["k"] for r in found.ranking}):
        best = found.best(basis, "validation", budget, k)
        if best is None:
            continue
        chosen = [next(h for h in heads if h["tap"] == t and h["width"] == w)
                  for t, w in zip(best["taps"].split(), best["widths"].split(), strict=True)]
        probs = [h["cal"] for h in chosen] + [chosen[0]["cal_final"]]
        got = {c: sweep.sweep(probs, cal_y, _cumulative(chosen, c)) for c in col.values()}
        base = got["flops"]
        out[f"{k} exit(s): {best['taps']} ({best['widths']})"] = [
            {"rho": float(r), "accuracy": float(a), "mflops": float(m)}
            | ({"minstructions": float(got["device"]["mflops"][i])} if "device" in got else {})
            for i, (r, a, m) in enumerate(zip(base["rho"], base["accuracy"], base["mflops"], strict=True))]
    return out


def _cpu() -> float:
    """CPU seconds of this process and of the programs it ran (the firmware builds and the emulator)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
