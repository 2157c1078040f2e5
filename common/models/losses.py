"""Losses of the project beyond Keras' own (the EENets mixture loss lives with the prior methods)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="trecx")
class SmoothedSparseCE(keras.losses.Loss):
    """Cross-entropy of integer labels against (1 - s) one-hot + s / classes (label smoothing, which
    Keras offers only for one-hot labels)."""

    def __init__(self, smoothing: float = 0.0, name: str = "smoothed_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), y_pred.shape[-1])
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.smoothing)

    def get_config(self) -> dict:
        return super().get_config() | {"smoothing": self.smoothing}
