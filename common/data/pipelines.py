"""Input pipelines over in-memory arrays.

On the TensorFlow backend: tf.data, `.map().batch().prefetch()`, augmentation as Keras
preprocessing layers, drawn per sample and per epoch. On another backend (JAX on a GPU, where
TensorFlow is not installed) the same batches come from `ArrayBatches`, a `keras.utils.PyDataset`
that shuffles and augments in NumPy.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def _augmenters(seed: int, rotation: float, shift: float, zoom: float) -> list:
    """The Keras preprocessing layers of the affine augmentations (not pad-crop and flip)."""
    aug = []
    if rotation:
        aug.append(keras.layers.RandomRotation(rotation, fill_mode="nearest", seed=seed))
    if shift:
        aug.append(keras.layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed + 1))
    if zoom:
        aug.append(keras.layers.RandomZoom(zoom, fill_mode="nearest", seed=seed + 2))
    return aug


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (x as float32, y) from arrays, reshuffled every epoch when `shuffle`. Training
    batches take pad-crop (zero padding by `pad_crop` pixels, then a random crop back to size) and a
    random horizontal flip in NumPy, then the affine augmentations as Keras layers. `keyed(names)`
    gives every output name the same label, as training needs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, seed: int = 0, shuffle: bool = False,
                 pad_crop: int = 0, flip: bool = False, augment: list | None = None,
                 names: list[str] | None = None, workers: int = 4):
        # Keras layers keep a seed state: one worker then, so that no two batches draw the same numbers
        super().__init__(workers=1 if augment else workers, use_multiprocessing=False)
        self.x, self.y, self.batch, self.pad_crop, self.flip = x, y, batch, pad_crop, flip
        self.augment = augment or []
        self.names, self.shuffle, self.seed, self.epoch = names, shuffle, seed, 0
        self.order = self._order()

    def keyed(self, names: list[str]) -> ArrayBatches:
        """The same batches with the label under every output name."""
        out = object.__new__(ArrayBatches)
        out.__dict__.update(self.__dict__, names=list(names))
        return out

    def _order(self) -> np.ndarray:
        n = len(self.y)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()

    def _crop_flip(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w = x.shape[:3]
        if self.pad_crop:
            p = self.pad_crop
            padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
            rows = dy[:, None] + np.arange(h)[None, :]  # (n, h)
            cols = dx[:, None] + np.arange(w)[None, :]  # (n, w)
            x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if self.flip:
            flipped = rng.random(n) < 0.5
            x = np.where(flipped[:, None, None, None], x[:, :, ::-1], x)
        return x

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch:(index + 1) * self.batch]
        x, y = self.x[idx], self.y[idx]
        if self.shuffle and (self.pad_crop or self.flip):
            x = self._crop_flip(x, np.random.default_rng([self.seed, self.epoch, index]))
        x = x.astype(np.float32)
        for layer in self.augment:
            x = layer(x, training=True)
        x = keras.ops.convert_to_numpy(x)
        return x, ({n: y for n in self.names} if self.names else y)


def on_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow (tf.data, tf.distribute), not on JAX or another backend."""
    return keras.backend.backend() == "tensorflow"


def eval_dataset(x: np.ndarray, y: np.ndarray, batch: int = 256):
    if not on_tensorflow():
        return ArrayBatches(x, y, batch)
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y)).batch(batch).prefetch(2)


def image_train_dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int, rotation: float = 0.0,
                        shift: float = 0.0, zoom: float = 0.0, flip: bool = False, pad_crop: int = 0):
    """Shuffled training batches of uint8 images as float32 0..255, with random rotation (fraction
    of a full turn), shift and zoom (fractions of the size), horizontal flip, and `pad_crop`: zero
    padding by that many pixels and a random crop back to size, done as a random whole-pixel
    translation with zero fill (the same images, drawn per sample on the batch)."""
    if not on_tensorflow():
        return ArrayBatches(x, y, batch, seed, shuffle=True, pad_crop=pad_crop, flip=flip,
                            augment=_augmenters(seed, rotation, shift, zoom))
    import tensorflow as tf

    aug = []
    if pad_crop:
        frac = pad_crop / x.shape[1]
        aug.append(keras.layers.RandomTranslation(frac, frac, fill_mode="constant", interpolation="nearest",
                                                  seed=seed + 4))
    aug += _augmenters(seed, rotation, shift, zoom)
    if flip:
        aug.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    pipeline = keras.Sequential(aug) if aug else None
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda a, b: (tf.cast(a, tf.float32), b))
    if pipeline is not None:
        ds = ds.map(lambda a, b: (pipeline(a, training=True), b))
    return ds.prefetch(2)


def image_training_data(data, cfg, **augment) -> tuple:
    """(augmented training batches, validation batches, data info) of an image dataset's `Splits`, with the
    config's batch size, seed, rotation, shift and flip, plus the task's own `augment` options (zoom, pad_crop)."""
    train = image_train_dataset(data.x["train"], data.y["train"], cfg.batch_size, cfg.seed, rotation=cfg.rotation,
                                shift=cfg.shift, flip=cfg.flip, **augment)
    return train, eval_dataset(data.x["val"], data.y["val"]), data.info
