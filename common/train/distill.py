"""Knowledge distillation for early-exit models: a frozen teacher's softened outputs, and
the model's own final exit, as extra targets of every exit.

With `weight` a in [0, 1) and temperature T, each exit e of the student (loss weight w_e) learns from

    (1 - a) * [the compiled joint loss: label cross-entropy of every exit, weighted]
    + a * T^2 * sum_e w_e * KL(teacher_T || e_T)                (teacher distillation)
    + s * T^2 * sum_(early e) w_e * KL(stop_grad(final)_T || e_T)  (self-distillation, weight s)
    + the student's weight regularisation

where p_T = softmax(log(p) / T): the outputs are probabilities, so their logs are the logits up to a
constant (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", for the T^2 scaling).
The teacher runs on the same augmented batch as the student, in inference mode, and never trains.
"""

from __future__ import annotations

import keras
from keras import ops

from ..models import contract

EPS = 1e-7


def soften(p, temperature: float):
    """Probabilities at temperature T, from probabilities (not logits)."""
    return ops.softmax(ops.log(ops.clip(p, EPS, 1.0)) / temperature, axis=-1)


def kl(target, p, temperature: float):
    """Mean over the batch of KL(target_T || p_T)."""
    t, q = soften(target, temperature), soften(p, temperature)
    return ops.mean(ops.sum(t * (ops.log(ops.clip(t, EPS, 1.0)) - ops.log(ops.clip(q, EPS, 1.0))), axis=-1))


class Distiller(keras.Model):
    """Trains `student` with the distillation terms above; `call` is the student's, so fit, evaluate
    and callbacks see the student's outputs. Only the student is saved (see `student_of`)."""

    def __init__(self, student: keras.Model, teacher: keras.Model | None, loss_weights: dict[str, float],
                 weight: float = 0.5, temperature: float = 4.0, self_weight: float = 0.0, **kwargs):
        super().__init__(name=f"{student.name}_distiller", **kwargs)
        self.student, self.teacher = student, teacher
        if teacher is not None:
            teacher.trainable = False
        self.loss_weights_by_exit, self.weight, self.temperature, self.self_weight = (
            loss_weights, weight, temperature, self_weight)
        self.exits = contract.exit_names(student)
        self.built = True  # student and teacher are built functional models: nothing is left to build

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _w(self, exit_name: str) -> float:
        return self.loss_weights_by_exit.get(exit_name, 1.0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Keras adds every sublayer's regularisation loss, the frozen teacher's too: keep the student's only,
        # outside the (1 - a) scaling of the label loss.
        total = super().compute_loss(x, y, y_pred, sample_weight, training)
        labels = total - _sum(self.losses)
        t2, extra = self.temperature**2, _sum(self.student.losses)
        if self.teacher is not None:
            target = self.teacher(x, training=False)
            target = target[contract.FINAL] if isinstance(target, dict) else target
            extra += self.weight * t2 * sum(self._w(e) * kl(target, y_pred[e], self.temperature) for e in self.exits)
            labels = (1.0 - self.weight) * labels
        if self.self_weight:
            final = ops.stop_gradient(y_pred[contract.FINAL])
            extra += self.self_weight * t2 * sum(self._w(e) * kl(final, y_pred[e], self.temperature)
                                                 for e in self.exits[:-1])
        return labels + extra


def _sum(losses: list):
    return ops.sum(ops.stack(losses)) if losses else 0.0


def student_of(model: keras.Model) -> keras.Model:
    """The model a callback should read or save: the student inside a Distiller, else the model itself."""
    return model.student if isinstance(model, Distiller) else model
