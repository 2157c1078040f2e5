"""The exit-signal study's rows (`signals.csv`, written by `python -m common signals`) as the model cards and
SUMMARY.md show them: each model's limit (the perfect signal) and how much of it each rule reaches."""

from __future__ import annotations

from pathlib import Path

from .. import records
from ..files import read_csv
from .tables import markdown

FILE = "signals.csv"
NOTE = ("The limit: every test sample leaves at the earliest exit whose class is the final exit's (the final "
        "exit's accuracy, no rule can save more without changing a prediction). Share tuned: the cut of the "
        "cheapest threshold within 1 point of the baseline on test itself, over the limit (an upper bound, as the "
        "limit is; for comparing signals only; 0% when nothing stays within 1 point on test, e.g. a final exit already "
        "that far below the baseline, or one mistake on 100 test images). Picked on validation: the threshold chosen "
        "there, measured on test, with its test drop. "
        "A rule other than max softmax ships only when its validation margin over max softmax is beyond noise "
        "(95% paired bootstrap, thresholds chosen again per resample). Float outputs; `signals.csv` has the "
        "certified cuts.")


def rows(results: Path) -> list[dict]:
    path = results / FILE
    return read_csv(path) if path.exists() else []


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _share(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _picked(r: dict) -> str:
    return f"{_pct(r['test_cut_pct'])} ({_pct(r['test_drop_points'])}) / {_share(r['test_share_of_limit_tuned'])}"


def table(got: list[dict], models: list[str] | None = None) -> list[str]:
    """One row per model: its limit, max softmax's share of it, the rule best on validation and its share, and
    the rule that ships."""
    out = []
    for model in models or list(dict.fromkeys(r["model"] for r in got)):
        mine = [r for r in got if r["model"] == model]
        if not mine:
            continue
        ms = next(r for r in mine if r["signal"] == "max_softmax")
        best = next(r for r in mine if r["best_on_validation"] in (True, "True"))
        ship = next(r for r in mine if r["ships"] in (True, "True"))
        out.append({"model": f"`{model}`", "limit: FLOPs cut % (test)": _pct(ms["test_limit_cut_pct"]),
                    "final exit's test drop (pt)": _pct(ms["test_final_drop_points"]),
                    "max softmax: cut % (drop pt) picked on val / share tuned": _picked(ms),
                    "best rule on validation": best["signal"],
                    "its cut % (drop pt) picked on val / share tuned": _picked(best),
                    "ships": ship["signal"]})
    return markdown(out, blank=False) if out else []


def card_lines(results: Path, variant: str) -> list[str]:
    got = table(rows(results), [variant])
    if not got:
        return []
    return ["", "## Exit signals against the limit (float, test; 1-point budget)", "", *got, "", NOTE]


def board_rows(results: Path) -> list[dict]:
    """What another exit signal costs on the board: for every deployment of `results` (a task's) on another signal
    than max softmax with a firmware record, beside a max-softmax deployment of the same int8 graphs run on the same
    board and kernels, the instructions of each early exit's segment under both (the same graphs: the difference is
    the signal's computation), and their expected sum per sample as a share of the baseline's instructions."""
    from .board import firmware_runs  # the checked readers of deploy.json and the firmware records

    deps = {p.parent: records.read(p.parent) for p in sorted(results.glob(f"deploy/*/{records.DEPLOY}"))}
    runs = {folder: firmware_runs(folder) for folder in deps}

    def graphs(d: records.Deployment) -> dict:
        return {k: v for k, v in d.hashes["graphs"].items() if ".int8." in k}

    out = []
    for folder, dep in deps.items():
        name = (dep.get("signal") or {}).get("name", "max_softmax")
        if name == "max_softmax":
            continue
        peers = [f for f, d in deps.items() if (d.get("signal") or {}).get("name", "max_softmax") == "max_softmax"
                 and d["variant"] == dep["variant"] and graphs(d) == graphs(dep)]
        for board, rec in runs[folder].items():
            peer = next(((f, runs[f][board]) for f in peers if board in runs[f]), None)
            if peer is None:
                continue
            mine, theirs = rec["instructions"]["per_segment_when_run"], peer[1]["instructions"]["per_segment_when_run"]
            early = dep["segments"][:-1]
            reach = [1 - sum(list(rec["exit_rates"].values())[:k]) for k in range(len(early))]
            extra = {s: mine[s] - theirs[s] for s in early}
            per_sample = sum(extra[s] * r for s, r in zip(early, reach, strict=True))
            out.append({"folder": folder.name, "signal": name, "board": board, "beside": peer[0].name,
                        "samples": rec["samples"], "bit_exact": rec["bit_exact"],
                        **{f"{s}_instructions_{name}": mine[s] for s in early},
                        **{f"{s}_instructions_max_softmax": theirs[s] for s in early},
                        "signal_instructions_per_sample": per_sample,
                        "baseline_instructions": rec["instructions"]["baseline"],
                        "signal_pct_of_baseline": 100 * per_sample / rec["instructions"]["baseline"]})
    return out
