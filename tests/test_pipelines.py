"""The NumPy input pipeline (ArrayBatches) that training uses off the TensorFlow backend (JAX on a GPU)."""

from __future__ import annotations

import numpy as np

from common.data.pipelines import ArrayBatches


def _ones(n: int = 64, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    return np.ones((n, size, size, 3), np.uint8), np.arange(n) % 10


def test_eval_batches_in_order_as_float32():
    x, y = _ones(10)
    ds = ArrayBatches(x * np.arange(10, dtype=np.uint8)[:, None, None, None], y, batch=4)
    assert len(ds) == 3
    xb, yb = ds[2]
    assert xb.dtype == np.float32 and xb.shape == (2, 8, 8, 3)
    assert yb.tolist() == [8, 9] and xb[:, 0, 0, 0].tolist() == [8.0, 9.0]


def test_pad_crop_is_a_whole_pixel_shift_with_zero_fill():
    x, y = _ones()
    xb, _ = ArrayBatches(x, y, batch=64, seed=1, shuffle=True, pad_crop=2)[0]
    shifts = set()
    for img in xb[..., 0]:
        rows, cols = int(img.any(axis=1).sum()), int(img.any(axis=0).sum())
        assert img.sum() == rows * cols  # one rectangle of ones, the rest zero padding
        assert 8 - rows <= 2 and 8 - cols <= 2
        shifts.add((rows, cols))
    assert len(shifts) > 3  # drawn per sample


def test_flip_mirrors_about_half_the_images():
    x = np.zeros((200, 4, 4, 1), np.uint8)
    x[:, :, 0] = 1  # a stripe on the left edge
    xb, _ = ArrayBatches(x, np.zeros(200), batch=200, seed=0, shuffle=True, flip=True)[0]
    left, right = xb[:, :, 0, 0].all(axis=1), xb[:, :, -1, 0].all(axis=1)
    assert (left ^ right).all() and 60 < right.sum() < 140


def test_seeded_order_changes_each_epoch_and_keyed_labels():
    x, y = _ones(32)
    ds = ArrayBatches(x, y, batch=8, seed=5, shuffle=True).keyed(["early_exit", "final"])
    first = ds[0][1]["final"].copy()
    assert (ds[0][1]["early_exit"] == first).all()
    assert (ArrayBatches(x, y, batch=8, seed=5, shuffle=True)[0][1] == first).all()  # same seed, same batch
    ds.on_epoch_end()
    assert not (ds[0][1]["final"] == first).all()
