"""tf.data pipelines over in-memory arrays: `.map().batch().prefetch()`, augmentation as Keras
preprocessing layers, drawn per sample and per epoch."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def eval_dataset(x: np.ndarray, y: np.ndarray, batch: int = 256) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y)).batch(batch).prefetch(2)


def image_train_dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int, rotation: float = 0.0,
                        shift: float = 0.0, zoom: float = 0.0, flip: bool = False,
                        pad_crop: int = 0) -> tf.data.Dataset:
    """Shuffled training batches of uint8 images as float32 0..255, with random rotation (fraction
    of a full turn), shift and zoom (fractions of the size), horizontal flip, and `pad_crop`: zero
    padding by that many pixels and a random crop back to size, done as a random whole-pixel
    translation with zero fill (the same images, drawn per sample on the batch)."""
    aug = []
    if pad_crop:
        frac = pad_crop / x.shape[1]
        aug.append(keras.layers.RandomTranslation(frac, frac, fill_mode="constant", interpolation="nearest",
                                                  seed=seed + 4))
    if rotation:
        aug.append(keras.layers.RandomRotation(rotation, fill_mode="nearest", seed=seed))
    if shift:
        aug.append(keras.layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed + 1))
    if zoom:
        aug.append(keras.layers.RandomZoom(zoom, fill_mode="nearest", seed=seed + 2))
    if flip:
        aug.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    pipeline = keras.Sequential(aug) if aug else None
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda a, b: (tf.cast(a, tf.float32), b))
    if pipeline is not None:
        ds = ds.map(lambda a, b: (pipeline(a, training=True), b))
    return ds.prefetch(2)
