"""The DS-CNN on Speech Commands task: its data for testing and deployment, its extra figures (Fig 2
placement, Fig 6 curve gains, joint-phase validation loss), and its Task spec.

The trade-offs are measured against the MLPerf Tiny reference DS-CNN on the same clips; our own
`baseline` (when present) is reported beside it."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from common import tasks
from common.data import audio
from common.evaluation import plots
from common.evaluation.evaluate import curve_gain, write_csv
from common.models import weights
from keyword_spotting import model, train
from keyword_spotting.config import REFERENCE

NAME = "keyword_spotting"
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def load(data_dir: str, split_seed: int) -> tasks.EvalData:
    """MFCCs of the validation and test clips; calibration: MFCCs of random training clips (no augmentation)."""
    data = audio.load_speech_commands(data_dir or None, seed=split_seed)
    wav = data.wav["train"]

    def calibration(n: int) -> np.ndarray:
        return audio.features(wav[np.random.default_rng(split_seed).permutation(len(wav))[:n]])

    return tasks.EvalData({s: (audio.features(data.wav[s]), data.y[s]) for s in ("val", "test")}, data.info,
                          data.names, calibration)


PLACEMENT = {b: model.study_name(b, "none") for b in (1, 2, 3)}  # the paper's EE after DS block b (trecx: 2)


def placement(models: dict, out: Path, data: tasks.EvalData, models_dir: Path) -> None:
    """Fig 2: standalone early- and final-exit accuracy against the EE position, with the baseline;
    and the weight-transfer comparison of Fig 6 along the benefit curves."""
    rows = []
    for position, name in PLACEMENT.items():
        p = out / name / "summary.json"
        if name in models and p.exists():
            s = json.loads(p.read_text())
            rows.append({"position": position, "model": name,
                         "early_exit_mflops": s["exit_costs"]["early_exit"]["mflops"],
                         "early_exit_test_accuracy": s["standalone"]["early_exit"]["test"],
                         "final_test_accuracy": s["standalone"]["final"]["test"],
                         "test_flops_reduction_pct_1pt": s["tradeoffs"][0]["test_flops_reduction_pct"]})
    if rows:
        write_csv(out / "fig2_ee_placement.csv", rows)
        base = json.loads((out / BASELINE / "summary.json").read_text())["standalone"]["final"]["test"]
        plots.placement(rows, out / "fig2_ee_placement.png", baseline=base, baseline_label=BASELINE,
                        title="DS-CNN: early exit after DS block n (test split)")
    pairs = [("trecx", "trecx_notransfer"), ("trecx", "trecx_noev"), ("trecx", "eefmaps_concat")]
    curve = {m: out / m / "benefit_curve_test.csv" for m in {m for p in pairs for m in p}}
    gains = [curve_gain(curve[a], curve[b]) | {"model": a, "against": b}
             for a, b in pairs if curve[a].exists() and curve[b].exists()]
    if gains:
        write_csv(out / "fig6_curve_gains.csv", gains)
    # Does joint fine-tuning help? The final exit's validation loss per epoch, head-only phase first.
    logs = {m: models_dir / f"{m}.log.csv" for m in ("baseline", "trecx", "trecx_noev")}
    logs = {m: p for m, p in logs.items() if p.exists()}
    if logs:
        head = json.loads((models_dir / "trecx.config.json").read_text()).get("head_epochs") \
            if (models_dir / "trecx.config.json").exists() else None
        plots.training_curves(logs, out / "joint_phase_val_loss.png", mark=head,
                              title="DS-CNN from MLPerf weights: final-exit val loss")


# Issue 14's targets; the paper's values from its Table 1 (../shared/papers/README.md).
TARGETS = (
    tasks.Target("trecx final exit at least the MLPerf reference", "trecx.final_test_accuracy",
                 "mlperf_reference.final_test_accuracy", "92.37% vs 92.2%"),
    tasks.Target("trecx early exit", "trecx.early_exit_test_accuracy", 0.88, "88.5%"),
    tasks.Target("FLOPs cut at <= 1 point, best of trecx / trecx_plus (%)",
                 "max(trecx,trecx_plus).test_flops_reduction_pct_1pt", 38.0, "37.7%"),
)

TASK = tasks.register(tasks.Task(
    name=NAME, input_shape=(49, 10, 1), classes=audio.KWS_CLASSES, baseline=BASELINE, load=load, train=train.main,
    reference=partial(weights.reference_model, NAME, REFERENCE), extra=placement, targets=TARGETS,
    study=tasks.Study(tuple(model.WIDTHS), (1, 2, 3), model.study_name),
    curves={"fig4b_benefit_curves.png": ["trecx", "trecx_plus", "trecx_noev", "trecx_dwfirst"],
            "fig6_weight_transfer.png": ["trecx", "trecx_notransfer", "eefmaps_concat"]}))
