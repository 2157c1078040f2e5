"""The DS-CNN on Speech Commands task: its data for testing and deployment, its extra figures (Fig 2
placement, Fig 6 curve gains, joint-phase validation loss), and its Task spec.

The trade-offs are measured against the MLPerf Tiny reference DS-CNN on the same clips; our own
`baseline` (when present) is reported beside it."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from trecx import tasks
from trecx.data import audio
from trecx.data.pipelines import eval_dataset
from trecx.data.splits import hold_out, test_parts
from trecx.evaluation import plots, summary
from trecx.evaluation.evaluate import curve_gain
from trecx.files import write_csv
from trecx.models import weights
from trecx.train import plots as train_plots

from . import model
from .config import REFERENCE

NAME = "keyword_spotting"
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def load(data_dir: str, split_seed: int) -> tasks.EvalData:
    """MFCCs of the validation, calibration and test clips; int8 samples: MFCCs of random training clips (no
    augmentation)."""
    data = audio.load_speech_commands(data_dir or None, seed=split_seed)
    wav = data.wav["train"]

    def calibration(n: int) -> np.ndarray:
        return audio.features(wav[np.random.default_rng(split_seed).permutation(len(wav))[:n]])

    return hold_out(tasks.EvalData({s: (audio.features(data.wav[s]), data.y[s]) for s in ("val", "test")},
                                   data.info, data.names, calibration), split_seed)


def field(data_dir: str, split_seed: int) -> tasks.FieldData:
    """The test clips as int16 waveforms (the front end, `audio.features`, runs after a shift), and the dataset's
    background recordings."""
    data = audio.load_speech_commands(data_dir or None, seed=split_seed)
    test = test_parts(data.y["test"], split_seed)["test"]
    return tasks.FieldData(data.wav["test"][test], data.y["test"][test], audio.features,
                           ("background_noise", "gain", "time_shift", "muffled"), data.background)


def train_data(cfg) -> tuple:
    """Training batches (augmented, with extra silence) and validation MFCC batches of `cfg` (a config.Config)."""
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    return (audio.train_dataset(data, cfg.batch_size, cfg.seed, cfg.silence_fraction),
            eval_dataset(audio.features(data.wav["val"]), data.y["val"]), data.info)


PLACEMENT = {b: model.study_name(b, "none") for b in (1, 2, 3)}  # the paper's EE after DS block b (trecx: 2)


def placement(models: dict, out: Path, data: tasks.EvalData, models_dir: Path) -> None:
    """Fig 2: standalone early- and final-exit accuracy against the EE position, with the baseline;
    and the weight-transfer comparison of Fig 6 along the benefit curves."""
    rows = []
    for position, name in PLACEMENT.items():
        s = summary.load(out, name)
        if name in models and s is not None:
            rows.append({"position": position, "model": name, "early_exit_mflops": s.mflops("early_exit"),
                         "early_exit_test_accuracy": s.accuracy("early_exit"), "final_test_accuracy": s.accuracy(),
                         "test_flops_reduction_pct_1pt": s.tradeoffs[0].test_flops_reduction_pct})
    if rows:
        write_csv(out / "fig2_ee_placement.csv", rows)
        base = summary.load(out, BASELINE).accuracy()
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
        train_plots.training_curves(logs, out / "joint_phase_val_loss.png", mark=head,
                              title="DS-CNN from MLPerf weights: final-exit val loss")


# The targets; the paper's values from its Table 1 (../shared/papers/README.md).
TARGETS = (*tasks.reference_targets(0.88, 38.0, ("92.37% vs 92.2%", "88.5%", "37.7%")), tasks.two_exit_target())

TASK = tasks.register(tasks.Task(
    dataset="speech_commands",
    name=NAME, input_shape=(49, 10, 1), classes=audio.KWS_CLASSES, baseline=BASELINE, load=load, train_data=train_data,
    reference=partial(weights.reference_model, NAME, REFERENCE), extra=placement, targets=TARGETS,
    study=tasks.Study(tuple(model.WIDTHS), (1, 2, 3), model.study_name), field=field,
    curves={"fig4b_benefit_curves.png": ["trecx", "trecx_plus", "trecx_noev", "trecx_dwfirst"],
            "fig6_weight_transfer.png": ["trecx", "trecx_notransfer", "eefmaps_concat"]}))
