"""The calibration split: part of each task's test split that only certification reads.

A certificate (Learn-then-Test, `evaluation.calibrate`) needs calibration data exchangeable with deployment
data *given the model and the thresholds it may choose from*. Validation chose the recipe, the checkpoint,
the variant and the exit placement, so it cannot certify. The test split chose nothing (headlines and targets
are picked on validation), so a seeded stratified part of it becomes the calibration split and the rest stays
the test split every report reads. docs/calibration.md says why, and what a certificate then bounds.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..tasks import EvalData
from .sources import stratified_split

CALIBRATION_FRACTION = 0.5  # of the test split: enough to certify at 1 point on IC (2,500 images), all it can spare
SALT = 7919  # the calibration split's seed is split_seed + SALT: apart from the seeds that drew train/val/test


def test_parts(labels, seed: int, fraction: float = CALIBRATION_FRACTION) -> dict:
    """The indices of the test split's "calibration" and "test" parts (`hold_out`'s cut), for a task that reads
    its test samples in another form (raw waveforms for the field study)."""
    return stratified_split(labels, {"calibration": fraction, "test": 1 - fraction}, seed + SALT)


def hold_out(ev: EvalData, seed: int, fraction: float = CALIBRATION_FRACTION) -> EvalData:
    """`ev` with its test split cut in two, stratified and seeded by `seed`: "calibration" (`fraction`) and
    "test" (the rest), their sample names recorded beside the others'."""
    x, y = ev.splits["test"]
    parts = test_parts(y, seed, fraction)
    splits = {k: v for k, v in ev.splits.items() if k != "test"}
    splits |= {k: (x[i], y[i]) for k, i in parts.items()}
    names = ev.files.get("test")
    files = dict(ev.files)
    if names is not None:
        if len(names) != len(y):
            raise ValueError(f"{len(names)} test sample names for {len(y)} test samples")
        files |= {k: [names[j] for j in i] for k, i in parts.items()}
    info = ev.info | {"calibration_split": f"{fraction:g} of the test split, stratified, seed split_seed + {SALT}",
                      "counts": {**ev.info.get("counts", {}), **{k: len(i) for k, i in parts.items()}}}
    return EvalData(splits, info, files, ev.int8_samples)



READ_BY = "certification only: deploy's certified thresholds, test's certified trade-offs, the API's calibrate_exit"
NEVER_READ_BY = ("training, early stopping and checkpoint choice (train and validation splits), distillation, the "
                 "settings searches, the exit study, promotion, exit placement and design choices such as pooling "
                 "(validation split)")


def lineage(configs: dict[str, Path], split_seed: int, info: dict) -> dict:
    """Which steps read the calibration split of `info` (a loaded split's record), checked against the training
    records (`configs`: model name -> its config.json): the split is untouched when every model we trained was
    trained on the split of the same seed and data checksum, so none of its samples trained or chose them. A model
    without a record (the MLPerf reference) was trained elsewhere, on data the record names."""
    problems = [] if "calibration_split" in info else ["the data has no calibration split"]
    notes = []
    for name, path in configs.items():
        if not Path(path).exists():
            notes.append(f"{name}: trained outside this project (no {Path(path).name}); it chose nothing here")
            continue
        cfg = json.loads(Path(path).read_text())
        seed, checksum = cfg.get("split_seed"), (cfg.get("data") or {}).get("checksum")
        if seed != split_seed:
            problems.append(f"{name} was trained on the split of seed {seed}, not {split_seed}: these calibration "
                            "samples may have trained or chosen it")
        elif checksum and info.get("checksum") and checksum != info["checksum"]:
            problems.append(f"{name} was trained on other data (checksum {checksum[:12]}, not "
                            f"{info['checksum'][:12]})")
    return {"calibration_split": info.get("calibration_split", "none"), "read_by": READ_BY,
            "never_read_by": NEVER_READ_BY, "untouched": not problems, "problems": problems, "notes": notes}
