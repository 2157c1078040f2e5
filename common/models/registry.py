"""A registry of model variants per task, so scripts and tests look models up by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras

from .. import tasks
from ..errors import ConfigError, ModelFileError
from .contract import load_model


@dataclass(frozen=True)
class Variant:
    """A registered model variant: its builder and what training it needs."""

    task: str
    name: str
    builder: Callable[..., keras.Model]
    # per output; or a function of the built model giving them (when they depend on its FLOPs)
    loss_weights: dict[str, float] | Callable[[keras.Model], dict[str, float]] = field(
        default_factory=lambda: {"final": 1.0})
    weight_transfer: bool = False  # run EVWeightTransfer while training
    post_trained: bool = False  # train only the exit heads; every backbone weight stays as warm-started

    def weights_for(self, model: keras.Model) -> dict[str, float]:
        return self.loss_weights(model) if callable(self.loss_weights) else self.loss_weights


_REGISTRY: dict[tuple[str, str], Variant] = {}


def register(task: str, name: str, builder: Callable[..., keras.Model], loss_weights=None,
             weight_transfer: bool = False, post_trained: bool = False) -> None:
    """Add a variant; a name already taken in the task is refused (two builders, one name, is a bug)."""
    if (task, name) in _REGISTRY:
        raise ValueError(f"model variant '{name}' is already registered for task '{task}'")
    _REGISTRY[(task, name)] = Variant(task, name, builder, loss_weights or {"final": 1.0}, weight_transfer,
                                      post_trained)


def get(task: str, name: str) -> Variant:
    _load_tasks()
    if (task, name) not in _REGISTRY:
        raise ConfigError(f"--variant: unknown model variant '{name}' for {task}; known: {', '.join(names(task))}")
    return _REGISTRY[(task, name)]


def names(task: str | None = None) -> list[str]:
    _load_tasks()
    return sorted(n for t, n in _REGISTRY if task in (None, t))


def _load_tasks() -> None:
    """Import the tasks' model modules, which register their variants."""

    for name in tasks.NAMES:
        tasks.module(name, "model")


def baseline_model(task, models_dir: Path):
    """The model `task`'s trade-offs are measured against: the MLPerf reference, or `models_dir`/<baseline>.keras
    (a one-line ModelFileError when it is missing)."""
    if task.baseline == "mlperf_reference":
        return task.reference()
    path = models_dir / f"{task.baseline}.keras"
    if not path.exists():
        raise ModelFileError(f"{path} not found: the baseline of {task.name} (train --variant {task.baseline})")
    return load_model(path)
