"""The output contract of every model in the project, in one place.

A model's outputs are a dict keyed by name:
- `final`: the last exit's class probabilities (softmax); always there.
- `early_exit` (T-RecX: one early exit) or `exit_1`, `exit_2`, ... (multi-exit prior methods): the
  early exits' class probabilities, in this exit order, before `final`.
- `confidence_<i>` (EENets, PTEENet): a sigmoid confidence per early exit `exit_<i>`, thresholded
  instead of max softmax at inference.
- `mixture` (EENets, PTEENet): a training-only output (the confidence-weighted mixture and its cost).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from ..errors import ModelFileError

FINAL, EARLY, MIXTURE = "final", "early_exit", "mixture"
EXIT_PREFIX, CONFIDENCE_PREFIX = "exit_", "confidence_"
# Layers whose names start so belong to exit heads, never to a backbone (warm starts skip them).
HEAD_PREFIXES = (EARLY, "ev_assist", EXIT_PREFIX, CONFIDENCE_PREFIX, MIXTURE)


def exit_name(i: int) -> str:
    """The output (and layer) name of early exit i (1-based) of a multi-exit model."""
    return f"{EXIT_PREFIX}{i}"


def confidence_name(i: int) -> str:
    return f"{CONFIDENCE_PREFIX}{i}"


def is_head(layer_name: str) -> bool:
    return layer_name.startswith(HEAD_PREFIXES)


def model(inputs, final, early=None, exits=(), confidences=(), mixture=None, name: str = "model"):
    """The one place a model's outputs are named: `final`; `early_exit` (one early exit) or
    `exit_1..n` (`exits`, in order) with optional `confidence_1..n`; a training-only `mixture`.
    Returns the checked keras.Model."""

    outputs = {EARLY: early} if early is not None else {}
    outputs |= {exit_name(i): e for i, e in enumerate(exits, start=1)}
    outputs |= {confidence_name(i): c for i, c in enumerate(confidences, start=1)}
    outputs[FINAL] = final
    if mixture is not None:
        outputs[MIXTURE] = mixture
    built = keras.Model(inputs, outputs, name=name)
    check(built)
    return built


def output_names(model) -> list[str]:
    return list(model.output_names) if isinstance(model.output, dict) else [FINAL]


def exit_names(model) -> list[str]:
    """Classifier outputs in exit order: `early_exit`, then `exit_1`, `exit_2`, ..., `final` last.
    Confidence heads and training-only outputs are not exits."""
    names = output_names(model)
    numbered = sorted((n for n in names if n.startswith(EXIT_PREFIX)), key=lambda n: int(n.split("_")[1]))
    return ([EARLY] if EARLY in names else []) + numbered + [FINAL]


def confidence_of(model, exit_name: str) -> str | None:
    """The confidence head thresholded at an exit (EENets, PTEENet), or None (max softmax)."""
    name = f"{CONFIDENCE_PREFIX}{exit_name.split('_')[1]}" if exit_name.startswith(EXIT_PREFIX) else ""
    return name if name in output_names(model) else None


def check(model) -> None:
    """Raise ValueError naming what breaks the contract: unknown output names, a missing `final`,
    both naming schemes at once, gaps in the exit numbers, or a confidence head with no exit."""
    names = output_names(model)
    if FINAL not in names:
        raise ValueError(f"model '{model.name}' has no '{FINAL}' output (outputs: {names})")
    numbered = [n for n in names if n.startswith(EXIT_PREFIX)]
    if EARLY in names and numbered:
        raise ValueError(f"model '{model.name}' mixes '{EARLY}' with numbered exits {numbered}")
    try:
        numbers = sorted(int(n.split("_", 1)[1]) for n in numbered)
    except ValueError:
        raise ValueError(f"model '{model.name}' has an exit name that is not {EXIT_PREFIX}<number>: "
                         f"{numbered}") from None
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"model '{model.name}' exits are not numbered 1..{len(numbers)}: {numbered}")
    exits = set(exit_names(model))
    for n in names:
        if n.startswith(CONFIDENCE_PREFIX):
            if f"{EXIT_PREFIX}{n.split('_', 1)[1]}" not in exits:
                raise ValueError(f"model '{model.name}' has confidence head '{n}' for an exit it lacks")
        elif n not in exits and n != MIXTURE:
            raise ValueError(f"model '{model.name}' has an output '{n}' outside the contract")


def load_model(path: Path | str):
    """A `.keras` model, checked against the output contract; a missing, truncated or foreign file
    raises ModelFileError naming it."""
    # the project's serializable classes are registered by the package's __init__, which ran before this module
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not a .keras archive (truncated or another format)")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds here; the message names the file either way
        raise ModelFileError(f"cannot load model file {path}: {str(e).splitlines()[0][:200]}") from e
    try:
        check(model)
    except ValueError as e:
        raise ModelFileError(f"model file {path}: {e}") from e
    return model
