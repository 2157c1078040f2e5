"""Every shipped deployment's certificate beside what it gave on test (`results/certificates.csv`), and the
certificate targets (`results/certificate_targets.csv`): each certified deployment within its budget on test or
listed as over it with its interval, the count of those over against delta, IC's two-exit instruction cut at a
1-point budget, and the smallest budget each task's calibration split certifies with the instruction cut there.
Deployments are read through `records` and firmware records through `reporting.board`, so a stale one is refused.
"""

from __future__ import annotations

from pathlib import Path

from .. import records
from ..files import write_csv
from .board import BOARD, IC_CUT, firmware_records
from .targets import row

CSV, TARGETS = "certificates.csv", "certificate_targets.csv"


def rows(results: Path) -> list[dict]:
    """One row per shipped deployment (`results/<task>/deploy/<folder>/deploy.json`)."""
    out = []
    for path in sorted(results.glob(f"*/deploy/*/{records.DEPLOY}")):
        dep = records.read(path.parent)
        t, test = dep["threshold"], dep["threshold"]["test"]
        fw = next(iter(firmware_records(path.parent, f"firmware_{BOARD}.json")), None)
        smallest = dep.get("smallest_budget_certified")
        at_smallest = (dep["certified_by_budget"][str(smallest)]["test"] if smallest is not None else {})
        out.append({"task": dep["task"], "folder": path.parent.name, "variant": dep["variant"],
                    "pooling": dep.get("pooling"), "rule": t["rule"],
                    "signal": (dep.get("signal") or {}).get("name", "max_softmax"), "budget_points": t["budget_points"],
                    "certified": t["certified"], "rhos": " ".join(f"{r:g}" for r in t["rhos"] or []) or "none",
                    "calibration_samples": dep["budget"]["calibration_samples"],
                    "lineage_untouched": dep["lineage"]["untouched"], "guarantee": t["guarantee"],
                    "test_drop_points": test["drop_points"], "test_drop_ci95_low": test["drop_points_ci95"][0],
                    "test_drop_ci95_high": test["drop_points_ci95"][1],
                    "within_budget": test["drop_points"] <= t["budget_points"] + 1e-9,
                    "test_flops_cut_pct": test["flops_cut_pct"], "val_flops_cut_pct": t["val"]["flops_cut_pct"],
                    "over_baseline": dep.get("over_baseline", ""),
                    "smallest_budget_certified": smallest,
                    "flops_cut_pct_at_smallest": at_smallest.get("flops_cut_pct"),
                    "val_flops_cut_pct_at_smallest": (dep["certified_by_budget"][str(smallest)]["val"]["flops_cut_pct"]
                                                      if smallest is not None else None),
                    "test_drop_at_smallest": at_smallest.get("drop_points"),
                    f"instruction_cut_pct_{BOARD}": fw["instruction_cut_pct"] if fw else None,
                    "firmware_samples": fw["samples"] if fw else None, "bit_exact": fw["bit_exact"] if fw else None,
                    "deployment": dep.digest})
    return out


def targets(table: list[dict], delta: float = 0.05) -> list[dict]:
    """The certificate targets, judged on `rows`: how many certified deployments went over their budget on test
    (a report against delta), IC's two-exit instruction cut at a certified 1-point budget (IC_CUT), and for KWS
    and VWW the smallest budget their calibration splits certify, with the instruction cut there."""
    certified = [r for r in table if r["certified"]]
    over = [r for r in certified if not r["within_budget"]]
    out = [row("certified deployments over their budget on test (count, against delta x the certified ones: a "
               "report, not a pass or fail)", "all", len(over), delta * len(certified), None,
               "; ".join(f"{r['task']} {r['folder']}: {r['test_drop_points']:.2f} pt [{r['test_drop_ci95_low']:.2f}, "
                         f"{r['test_drop_ci95_high']:.2f}] at a {r['budget_points']}-point budget" for r in over)
               or f"none of {len(certified)}")]
    ic = [r for r in table if r["task"] == "image_classification" and r["variant"] == "trecx2"
          and r["budget_points"] == 1]
    best = max((r for r in ic if r[f"instruction_cut_pct_{BOARD}"] is not None and r["certified"]),
               key=lambda r: r["val_flops_cut_pct"], default=None)  # picked on validation
    out.append(row(f"image_classification trecx2: instruction cut on {BOARD} at a certified 1-point budget (%)",
                   "image_classification", best and best[f"instruction_cut_pct_{BOARD}"], IC_CUT,
                   bool(best) and best[f"instruction_cut_pct_{BOARD}"] >= IC_CUT,
                   f"{best['folder']}" if best else "nothing certified at 1 point on the calibration split: "
                   + "; ".join(f"{r['folder']}: smallest budget certified {r['smallest_budget_certified']}"
                               for r in ic)))
    for task in ("keyword_spotting", "visual_wake_words"):
        mine = [r for r in table if r["task"] == task]
        smallest = min((r["smallest_budget_certified"] for r in mine if r["smallest_budget_certified"] is not None),
                       default=None)
        at = [r for r in mine if r["smallest_budget_certified"] == smallest and smallest is not None]
        best = max(at, key=lambda r: r["val_flops_cut_pct_at_smallest"], default=None)  # picked on validation
        run = next((r for r in mine if best and r["variant"] == best["variant"] and r["certified"]
                    and r["budget_points"] == smallest and r["pooling"] == best["pooling"]), None)
        cut = run and run[f"instruction_cut_pct_{BOARD}"]
        where = f"{cut:.1f}% ({run['folder']})" if cut is not None else "not run at that budget"
        note = (f"{best['variant']} (picked on validation): {best['flops_cut_pct_at_smallest']:.1f}% FLOPs cut, test "
                f"drop {best['test_drop_at_smallest']:.2f} pt ({best['calibration_samples']} calibration samples); "
                f"instruction cut {where}") if best else "no budget of 1, 2, 3, 5 or 10 points certified"
        out.append(row(f"{task}: the smallest budget its calibration split certifies (points), and the instruction "
                       f"cut on {BOARD} there", task, smallest, None, None, note, instruction_cut_pct=cut))
    return out


def write(results: Path) -> list[dict]:
    table = rows(results)
    if table:
        write_csv(results / CSV, table)
        write_csv(results / TARGETS, targets(table))
    return table
