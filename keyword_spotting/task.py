"""Evaluate the DS-CNN models of a folder on Speech Commands: python -m keyword_spotting.test

The trade-offs are measured against the MLPerf Tiny reference DS-CNN on the same clips; our own
`baseline` (when present) is reported beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common import audio, files, paths, plots, registry, report, weights
from common.evaluate import curve_gain, write_csv
from keyword_spotting.config import REFERENCE

TASK = "keyword_spotting"
CURVES = {"fig4b_benefit_curves.png": ["trecx", "trecx_noev"],
          "fig6_weight_transfer.png": ["trecx", "trecx_notransfer", "eefmaps_concat"]}
BASELINE = "mlperf_reference"  # what the trade-offs are measured against


def reference_model():
    """The MLPerf reference DS-CNN, as our baseline builder with its weights copied in."""
    model = registry.get(TASK, "baseline").builder()
    weights.load_backbone(model, weights.from_checkpoint(paths.resolve(REFERENCE)))
    return model


def load_data(cfg: report.TestConfig, out: Path) -> tuple[dict, dict]:
    data = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed)
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / "split.json", data.info | {"files": data.names})
    return {s: (audio.features(data.wav[s]), data.y[s]) for s in ("val", "test")}, data.info


def calibration(cfg: report.TestConfig, n: int) -> np.ndarray:
    """MFCCs of `n` random training clips (no augmentation), for int8 calibration."""
    wav = audio.load_speech_commands(cfg.data_dir or None, seed=cfg.split_seed).wav["train"]
    return audio.features(wav[np.random.default_rng(cfg.split_seed).permutation(len(wav))[:n]])


PLACEMENT = {1: "trecx_ee1", 2: "trecx", 3: "trecx_ee3"}  # EE after DS block n (trecx: block 2)


def placement(cfg: report.TestConfig, models: dict, out: Path) -> None:
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
    models_dir = Path(cfg.models_dir or paths.REPO / "pretrained" / TASK)
    logs = {m: models_dir / f"{m}.log.csv" for m in ("baseline", "trecx", "trecx_noev")}
    logs = {m: p for m, p in logs.items() if p.exists()}
    if logs:
        head = json.loads((models_dir / "trecx.config.json").read_text()).get("head_epochs") \
            if (models_dir / "trecx.config.json").exists() else None
        plots.training_curves(logs, out / "joint_phase_val_loss.png", mark=head,
                              title="DS-CNN from MLPerf weights: final-exit val loss")


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main(TASK, argv, load_data, BASELINE, CURVES, reference=reference_model, doc=__doc__,
                       extra=placement)


if __name__ == "__main__":
    from common import cli

    cli.run(main)
