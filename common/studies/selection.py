"""A study that sees selection: certify the model that a split chose, on that split and on a split apart.

The re-split study (`resplit`) pools one fixed model's samples, so the choice of that model is averaged out. Here,
with the project's own tested variants (test.py's cached outputs), every round draws three disjoint parts of the
pooled samples: a *selecting* part picks the variant with the largest FLOPs cut within the budget there (as
promotion does on validation), then that variant's rho is certified by Learn-then-Test once on the selecting part
(reuse) and once on a part *apart* of the same size; both rhos are judged on the rest. Selection on the certifying
data breaks the exchangeability the certificate needs; a part apart keeps it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluation import sweep, thresholds
from .resplit import Pooled, clopper_pearson, pooled

WHERE = ("the selecting part", "a part apart")


def candidates(results: Path, baseline: str, parts: tuple[str, ...]) -> dict[str, Pooled]:
    """Every tested variant of `results` with max-softmax early exits and cached outputs on `parts`, pooled."""
    out = {}
    for npz in sorted(results.glob("*/outputs.npz")):
        name = npz.parent.name
        if name != baseline and (data := pooled(results, name, baseline, parts)) is not None:
            out[name] = data
    return out


def study(cands: dict[str, Pooled], rounds: int = 200, part: int = 0, max_drop: float = 0.01, delta: float = 0.05,
          seed: int = 0) -> list[dict]:
    """Per round: the winner on a selecting part of `part` samples (default a third of the pool), its certified rho
    on that part and on a part apart, each judged on the rest. Returns one row per round and place."""
    first = next(iter(cands.values()))
    n_all = len(first.labels)
    part = part or n_all // 3
    pre = {}
    for name, d in cands.items():  # every rho on every pooled sample, once; then the full network (no exit)
        taken = sweep.exits_taken(d.probs, sweep.RHOS)
        preds = np.stack([p.argmax(axis=1) for p in d.probs])
        right = preds[taken, np.arange(n_all)] == d.labels[None, :]
        pre[name] = (right, np.asarray(d.costs, dtype=np.float64)[taken], preds[-1] == d.labels)
    base_right = first.base_right
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(rounds):
        perm = rng.permutation(n_all)
        sel, apart, rest = perm[:part], perm[part:2 * part], perm[2 * part:]
        floor = base_right[sel].mean() - max_drop - 1e-12
        cuts = {}
        for name, (right, cost, _) in pre.items():
            ok = np.flatnonzero(right[:, sel].mean(axis=1) >= floor)
            spent = cost[np.ix_(ok, sel)].mean(axis=1).min() if len(ok) else cands[name].costs[-1]
            cuts[name] = float(1 - spent / cands[name].base_mflops)
        winner = max(cuts, key=cuts.get)
        d, (right, cost, final_right) = cands[winner], pre[winner]
        for where, cal in zip(WHERE, (sel, apart), strict=True):
            got = thresholds.choose("certified", [p[cal] for p in d.probs], d.labels[cal], d.costs, base_right[cal],
                                    max_drop, delta, seed=r)
            if got.rho is None:  # nothing certified: the full network
                run_right, run_cost = final_right[rest], np.full(len(rest), d.costs[-1])
            else:
                k = int(np.flatnonzero(np.isclose(sweep.RHOS, got.rho))[0])
                run_right, run_cost = right[k, rest], cost[k, rest]
            drop = 100 * float(base_right[rest].mean() - run_right.mean())
            rows.append({"round": r, "certified_on": where, "winner": winner, "rho": got.rho, "drop_points": drop,
                         "cut_pct": 100 * float(1 - run_cost.mean() / d.base_mflops),
                         "violated": got.rho is not None and drop > 100 * max_drop + 1e-9})
    return rows


def summarise(rows: list[dict], candidates_: int, pool: int, part: int, max_drop: float, delta: float) -> list[dict]:
    """One row per place certified on: the violation rate over rounds with its exact 95% interval."""
    out = []
    for where in WHERE:
        got = [r for r in rows if r["certified_on"] == where]
        k = sum(r["violated"] for r in got)
        low, high = clopper_pearson(k, len(got))
        out.append({"certified_on": where, "rounds": len(got), "candidates": candidates_, "pooled_samples": pool,
                    "part_samples": part, "max_drop_points": 100 * max_drop, "delta": delta,
                    "violation_rate": k / len(got), "violation_ci95_low": low, "violation_ci95_high": high,
                    "abstain_rate": float(np.mean([r["rho"] is None for r in got])),
                    "mean_cut_pct": float(np.mean([r["cut_pct"] for r in got])),
                    "winners": " ".join(sorted({r["winner"] for r in got}))})
    return out
