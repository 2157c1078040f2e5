"""Evaluation from one inference pass: cached exit outputs, benefit curves, trade-off tables.

Everything is written as CSV/JSON into the variant's results folder; figures are drawn from those.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np

from .. import files
from ..files import read_csv, write_csv
from ..models import contract, flops
from . import sweep, thresholds
from .summary import FILE, Summary


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Every output of `model` on the rows of `x`, by name. The rows are padded (with copies of the last
    one) to whole batches: every batch then has one shape, so the predict function is traced once per model
    and reused for every batch (a short last batch of every split traced it again, and a few large batches
    per model traced once for every few calls, which TensorFlow reports as excessive retracing when many
    models are tested in a row). The padding does not change any row's output (checked in the tests)."""
    n = len(x)
    if n == 0:
        raise ValueError("predict: no rows")
    batch = min(batch_size, n)
    padded = np.concatenate([x, np.repeat(x[-1:], -n % batch, axis=0)]) if n % batch else x
    out = model.predict(padded, batch_size=batch, verbose=0)
    out = out if isinstance(out, dict) else {"final": out}
    return {k: v[:n] for k, v in out.items()}


def exit_probs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Every exit's softmax on the rows of x, in exit order (the final exit last)."""
    out = predict(model, x)
    return [out[n] for n in contract.exit_names(model)]


def cached_outputs(model: keras.Model, data: dict[str, tuple[np.ndarray, np.ndarray]], path: Path,
                   refresh: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per split, every exit's per-sample softmax (and the labels), from `path` (.npz) when it is
    there and was made by the same weights on the same labels, else from one inference pass, then saved."""
    key = weights_digest(model)
    z = files.load_npz(path) if path.exists() and not refresh else None  # an unreadable file is recomputed
    if z is not None:
        cached = {s: {k.split("/", 1)[1]: z[k] for k in z if k.startswith(f"{s}/")} for s in data}
        same_model = "model_digest" in z and str(z["model_digest"]) == key
        if same_model and all(np.array_equal(cached[s].get("labels", []), y) for s, (_, y) in data.items()):
            return cached
    out = {s: predict(model, x) | {"labels": y} for s, (x, y) in data.items()}
    files.savez(path, compressed=True, model_digest=np.array(key),
                **{f"{s}/{k}": v for s, d in out.items() for k, v in d.items()})
    return out


def weights_digest(model: keras.Model) -> str:
    """A hash of every weight of `model`, to tell whether cached outputs are its own."""
    h = hashlib.blake2b(digest_size=16)
    for w in model.weights:
        h.update(np.asarray(w).tobytes())
    return h.hexdigest()


def curve_rows(curve: dict[str, np.ndarray], names: list[str]) -> list[dict]:
    return [{"rho": float(curve["rho"][i]), "accuracy": float(curve["accuracy"][i]),
             "mflops": float(curve["mflops"][i]),
             **{f"exit_rate_{n}": float(curve["exit_rate"][i, j]) for j, n in enumerate(names)}}
            for i in range(len(curve["rho"]))]


def evaluate_variant(model: keras.Model, outputs: dict[str, dict[str, np.ndarray]], out_dir: Path,
                     baseline: dict[str, float] | None = None,
                     baseline_right: dict[str, np.ndarray] | None = None) -> Summary:
    """Write exits.csv, benefit_curve_{val,test}.csv, tradeoffs.csv and summary.json for one model.

    baseline: {"val_accuracy", "test_accuracy", "mflops"} of the reference model for the trade-offs;
    baseline_right: its per-sample correctness per split, for the guaranteed trade-offs (`guaranteed`).
    """
    names = contract.exit_names(model)
    costs = flops.exit_costs(model)
    cum = [costs[n]["mflops"] for n in names]
    calibration = outputs.get(CALIBRATION)
    outputs = {s: o for s, o in outputs.items() if s != CALIBRATION}  # certification alone reads that split
    exits = []
    for n in names:
        row = {"exit": n, "mflops": costs[n]["mflops"], "params": costs[n]["params"],
               "mflops_alone": costs[n]["mflops_alone"], "params_alone": costs[n]["params_alone"]}
        for s in outputs:
            row[f"{s}_accuracy"] = float((outputs[s][n].argmax(1) == outputs[s]["labels"]).mean())
        exits.append(row)
    write_csv(out_dir / "exits.csv", exits)
    summary: dict = {"exits": names, "params": int(model.count_params()), "exit_costs": costs,
                     "standalone": {r["exit"]: {s: r[f"{s}_accuracy"] for s in outputs} for r in exits}}
    if len(names) > 1:
        curves = {}
        for s in outputs:
            conf = [flops.confidence_of(model, n) for n in names[:-1]]
            confidences = [outputs[s][c].reshape(-1) for c in conf] if all(conf) else None  # EENets, PTEENet
            curves[s] = sweep.sweep([outputs[s][n] for n in names], outputs[s]["labels"], cum,
                                    confidences=confidences)
            write_csv(out_dir / f"benefit_curve_{s}.csv", curve_rows(curves[s], names))
            summary[f"oracle_{s}"] = sweep.oracle([outputs[s][n] for n in names], outputs[s]["labels"], cum)
        if baseline is not None and {"val", "test"} <= set(curves):
            rows = sweep.tradeoffs(curves["val"], curves["test"], baseline["val_accuracy"],
                                   baseline["test_accuracy"], baseline["mflops"])
            write_csv(out_dir / "tradeoffs.csv", rows)
            summary["tradeoffs"] = rows
            summary["baseline"] = baseline
            if len(names) > 2 and confidences is None:  # several max-softmax early exits: a threshold each
                vec = sweep.vector_tradeoffs([outputs["val"][n] for n in names], outputs["val"]["labels"],
                                             [outputs["test"][n] for n in names], outputs["test"]["labels"], cum,
                                             baseline["val_accuracy"], baseline["test_accuracy"], baseline["mflops"])
                write_csv(out_dir / "vector_tradeoffs.csv", [_vector_row(r, names) for r in vec])
                summary["vector_tradeoffs"] = vec
            if baseline_right is not None and confidences is None and calibration is not None:  # certify
                summary["guarantee"] = {"method": GUARANTEE_METHOD, "delta": GUARANTEE_DELTA,
                                        "calibrated_on": f"{CALIBRATION} ({len(calibration['labels'])} samples, "
                                                         "float Keras outputs)"}
                summary["guaranteed_tradeoffs"] = guaranteed(calibration, names, cum, curves, baseline,
                                                             baseline_right[CALIBRATION])
    files.write_json(out_dir / FILE, summary)
    return Summary.from_dict(summary)


def _vector_row(row: dict, names: list[str]) -> dict:
    """A vector trade-off as a CSV row: one `rho_<exit>` column per early exit."""
    rhos = row["rhos"] or [None] * (len(names) - 1)
    return {"drop_points": row["drop_points"], **{f"rho_{n}": r for n, r in zip(names, rhos, strict=False)},
            **{k: v for k, v in row.items() if k not in ("drop_points", "rhos")}}


GUARANTEE_METHOD, GUARANTEE_DELTA = "wsr", 0.05  # Learn-then-Test with a betting p-value (evaluation.calibrate)
CALIBRATION = "calibration"  # the split only certification reads (data.splits)


def guaranteed(cal_out: dict[str, np.ndarray], names: list[str], cum: list[float], curves: dict, baseline: dict,
               cal_right: np.ndarray, drops: tuple[float, ...] = (1, 2, 3)) -> list[dict]:
    """Per allowed drop, the rho certified on the calibration split (with probability >= 1 - GUARANTEE_DELTA over
    its draw, the expected drop against the baseline on its distribution is within the budget) and what it gives
    on the validation and test splits; the same fields as `sweep.tradeoffs`' rows (rho None: none certified, the
    full model runs). `cal_out`: every exit's outputs on the calibration split and its labels; `cal_right`: the
    baseline's per-sample correctness there."""
    rows = []
    for d in drops:
        cal = thresholds.choose("certified", [cal_out[n] for n in names], cal_out["labels"], cum, cal_right, d / 100,
                                GUARANTEE_DELTA, GUARANTEE_METHOD)
        row = {"drop_points": d, "rho": cal.rho, "val_accuracy": None, "val_mflops": None, "test_accuracy": None,
               "test_mflops": None, "test_flops_reduction_pct": None, "test_drop_points": None}
        if cal.rho is not None:
            v, t = (int(np.flatnonzero(np.isclose(curves[s]["rho"], cal.rho))[0]) for s in ("val", "test"))
            test_acc, test_mflops = float(curves["test"]["accuracy"][t]), float(curves["test"]["mflops"][t])
            row |= {"val_accuracy": float(curves["val"]["accuracy"][v]),
                    "val_mflops": float(curves["val"]["mflops"][v]),
                    "test_accuracy": test_acc, "test_mflops": test_mflops,
                    "test_flops_reduction_pct": 100 * (1 - test_mflops / baseline["mflops"]),
                    "test_drop_points": 100 * (baseline["test_accuracy"] - test_acc)}
        rows.append(row)
    return rows


def curve_gain(a: Path, b: Path, points: int = 50) -> dict:
    """How much higher benefit curve `a` lies than `b` (accuracy points), averaged over the MFLOPs
    range both cover, each curve linearly interpolated (the paper's Fig 6 comparison)."""
    ra, rb = read_csv(a), read_csv(b)
    return gain(np.array([r["mflops"] for r in ra]), np.array([r["accuracy"] for r in ra]),
                np.array([r["mflops"] for r in rb]), np.array([r["accuracy"] for r in rb]), points)


def gain(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, points: int = 50) -> dict:
    """`curve_gain` of two curves given as arrays (MFLOPs, accuracy)."""
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    if hi <= lo:
        return {"mean_gain_points": None, "mflops_low": lo, "mflops_high": hi}
    grid = np.linspace(lo, hi, points)
    ia, ib = np.argsort(xa), np.argsort(xb)
    diff = np.interp(grid, xa[ia], ya[ia]) - np.interp(grid, xb[ib], yb[ib])
    return {"mean_gain_points": float(100 * diff.mean()), "min_gain_points": float(100 * diff.min()),
            "max_gain_points": float(100 * diff.max()), "mflops_low": float(lo), "mflops_high": float(hi)}
