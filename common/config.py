"""Configs as code: a dataclass per task, named presets (e.g. "smoke"), and a command line that
overrides any field (`--epochs 3`). The resolved config is saved beside every output."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata as md
import inspect
import platform
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import keras

from . import files, paths
from .errors import ConfigError

SCHEDULES = ("exp99", "cosine", "constant")
OPTIMIZERS = ("adam", "sgd")
STRATEGIES = ("default", "mirrored", "multiworker")


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{v}'")


def _field_type(hint) -> tuple[typing.Callable[[str], typing.Any], dict]:
    """(type to parse one value with, extra add_argument options): a `tuple[X, ...]` field takes one
    or more values."""
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], {"nargs": "+"}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return (_parse_bool if base is bool else base), {}


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, through common.cli) instead of printing usage."""

    def error(self, message: str):
        raise ConfigError(f"{message} (see --help)")


_FIELD = re.compile(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$")
_GROUP = re.compile(r"^\s+# -- (.+)$")  # a `# -- name` line in a config class starts a --help group


def _sources(cls: type) -> list[str]:
    """The source lines of `cls` and its bases, the base first."""
    lines = []
    for klass in reversed(cls.__mro__):
        try:
            lines += inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
    return lines


def field_comments(cls: type) -> dict[str, str]:
    """The trailing `# comment` of every field in `cls` and its bases: the options' help text."""
    return {m.group(1): m.group(2).strip() for line in _sources(cls) if (m := _FIELD.match(line))}


def field_groups(cls: type) -> dict[str, str]:
    """The --help group of every field: the last `# -- name` line above it in its class ("options" when none)."""
    out: dict[str, str] = {}
    group = "options"
    for line in _sources(cls):
        if line.startswith("class "):
            group = "options"
        elif m := _GROUP.match(line):
            group = m.group(1).strip()
        elif m := _FIELD.match(line):
            out.setdefault(m.group(1), group)
    return out


def parse(cls: type, presets: dict[str, typing.Any] | None = None, argv: list[str] | None = None,
          description: str = "", required: tuple[str, ...] = (), fixed: dict | None = None,
          searches: dict[str, typing.Any] | None = None):
    """Build `cls` from `--config PRESET` plus per-field overrides on the command line.

    presets: the everyday presets (default: `cls()` alone, and then no --config option); `searches`: the
    presets of finished studies, accepted by --config but left out of its list; `required`: fields that
    must be given; `fixed`: fields set by the program itself, not options (a task's own test.py fixes
    its task)."""
    presets = presets or {"default": cls()}
    known = {**(searches or {}), **presets}
    parser = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(known) > 1:
        more = f"; the presets of finished searches are accepted too ({len(searches)})" if searches else ""
        parser.add_argument("--config", default="default", metavar="PRESET", choices=sorted(known),
                            help=f"named preset to start from: {', '.join(sorted(presets))}{more}")
    hints, comments, groups = typing.get_type_hints(cls), field_comments(cls), field_groups(cls)
    defaults = presets.get("default", cls())
    sections: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        if f.name == "preset" or f.name in (fixed or {}):
            continue  # set by --config, or by the program
        name = groups.get(f.name, "options")
        section = sections.get(name) or sections.setdefault(name, parser.add_argument_group(name))
        default = "required" if f.name in required else f"default: {getattr(defaults, f.name)!r}"
        help_text = f"{comments.get(f.name, '')} ({default})".replace("%", "%%")
        kind, extra = _field_type(hints[f.name])
        section.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=None, help=help_text,
                             required=f.name in required, **extra)  # None: only what was typed overrides
    args = parser.parse_args(argv)
    preset = getattr(args, "config", "default")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()
                 if k != "config" and v is not None} | (fixed or {})
    if "preset" in {f.name for f in dataclasses.fields(cls)}:
        overrides["preset"] = preset
    return dataclasses.replace(known[preset], **overrides)


@dataclass
class TrainConfig:
    """Fields shared by every task's config; each task's config.py subclasses it (and sets `task`)."""

    # -- what to train, and where
    task: str = ""  # the task's package (set by each task's Config; not an option)
    variant: str = "trecx"  # registered model variant (common.models.registry.names(task))
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    out_dir: str = ""  # run folder; "" = runs/<task>/<preset>/<variant>[_seed<k> when seed > 0]
    publish: bool = False  # copy best.keras, config and log to pretrained/<task>/ when done
    publish_as: str = ""  # name (or sub/path/name) under pretrained/<task>/; "" = the variant's name
    init_from: str = ""  # warm start: .keras, Keras 2 .h5 or SavedModel whose backbone is copied in
    restart: bool = False  # delete this run's folder and train from the start
    # -- recipe
    epochs: int = 100  # training epochs
    steps_per_epoch: int = 0  # 0 = the whole training split per epoch (smoke runs use a few steps)
    batch_size: int = 32  # global batch size
    lr: float = 1e-3  # peak learning rate
    lr_schedule: str = "exp99"  # "exp99": x0.99 per epoch (MLPerf Tiny); "cosine": cosine decay to 0; "constant"
    warmup_epochs: int = 0  # linear warm-up to `lr` over these epochs, before the schedule starts
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # Nesterov momentum (SGD)
    weight_decay: float = 0.0  # decoupled weight decay of the optimizer (biases and batch norm excluded)
    label_smoothing: float = 0.0  # cross-entropy of every exit against (1 - s) one-hot + s / classes
    ema: float = 0.0  # > 0: keep, evaluate and save an exponential moving average of the weights (momentum)
    # -- exits and joint training
    head_epochs: int = 0  # first epochs train only the exit heads and final classifier (backbone frozen)
    head_lr: float = 1e-3  # constant learning rate of those head-only epochs
    transfer_until: float = 0.8  # fraction of epochs with EE->EV weight transfer (T-RecX)
    cost_lambda: float = 0.1  # weight of the expected-cost term in the EENets/PTEENet loss (models.prior.LAMBDA)
    # -- distillation
    teacher: str = ""  # distil from this frozen model (.keras, or an MLPerf reference: reference:...); "" = none
    distill_weight: float = 0.5  # a: (1 - a) x label loss + a x T^2 x KL(teacher || exit), every exit
    temperature: float = 4.0  # T, softening both teacher and exits in the distillation terms
    self_distill: float = 0.0  # weight of the final exit (gradient stopped) teaching the early exits; 0 = off
    keep_joint: bool = False  # keep the best epoch of the joint phase only, never a head-only epoch
    # -- seeds, determinism and speed
    seed: int = 0  # seeds Python, NumPy and TF (weights, shuffling, augmentation)
    split_seed: int = 0  # seeds the data split; keep it fixed so test.py sees the same test set
    deterministic: bool = False  # TF op determinism (slower)
    strategy: str = "default"  # "default", "mirrored" (this machine's devices) or "multiworker" (TF_CONFIG)
    threads: int = 0  # TensorFlow CPU threads per op (0 = all cores); 1 lets two runs share 2 cores well
    preset: str = "default"  # the named preset these fields started from (set by --config)

    def __post_init__(self) -> None:
        """Refuse impossible values at once, before any data is read or TensorFlow started."""
        checks = [("epochs", self.epochs >= 1, "at least 1"),
                  ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("steps_per_epoch", self.steps_per_epoch >= 0, "0 (whole split) or more"),
                  ("head_epochs", 0 <= self.head_epochs < self.epochs, f"from 0 to epochs - 1 ({self.epochs - 1})"),
                  ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs - self.head_epochs,
                   "from 0 to the joint epochs - 1"),
                  ("lr", self.lr >= 0, "0 or more"), ("head_lr", self.head_lr >= 0, "0 or more"),
                  ("lr_schedule", self.lr_schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
                  ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
                  ("strategy", self.strategy in STRATEGIES, f"one of {', '.join(STRATEGIES)}"),
                  ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                  ("ema", 0 <= self.ema < 1, "in [0, 1)"), ("weight_decay", self.weight_decay >= 0, "0 or more"),
                  ("transfer_until", 0 <= self.transfer_until <= 1, "in [0, 1]"),
                  ("threads", self.threads >= 0, "0 (all cores) or more"),
                  ("distill_weight", 0 <= self.distill_weight < 1, "in [0, 1)"),
                  ("temperature", self.temperature > 0, "above 0"),
                  ("self_distill", self.self_distill >= 0, "0 or more")]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} must be {want}, got {getattr(self, name)!r}")


# Fields that say where or how fast a run goes, not what it trains: a resumed run may change them.
NOT_RECIPE = ("task", "data_dir", "out_dir", "publish", "publish_as", "threads", "restart", "strategy")


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""

    # the OS and processor, not the host's kernel build: a rerun elsewhere then writes the same record
    out = {"python": platform.python_version(), "platform": f"{platform.system()}-{platform.machine()}"}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "jax", "jaxlib", "numpy", "ai-edge-litert", "librosa",
                "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass

    out["keras_backend"] = keras.backend.backend()  # "jax" for runs trained on a GPU without TensorFlow
    return out


PATH_FIELDS = ("data_dir", "out_dir", "models_dir", "init_from", "teacher", "deploy_dir", "results_dir", "runs_dir",
               "third_party", "tflm", "storage")  # recorded with paths.portable


def record(config) -> dict:
    """A config as recorded beside its outputs: its paths relative to the repo or the reference
    models (see paths.portable), so the record reads the same on every machine."""

    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {k: paths.portable(v) if k in PATH_FIELDS and v else v for k, v in cfg.items()}


def save_run_info(out_dir: Path, config, extra: dict | None = None) -> None:
    """Write config.json (the resolved config) and versions.json beside a run's outputs."""

    files.write_json(out_dir / "config.json", record(config) | (extra or {}))
    files.write_json(out_dir / "versions.json", versions())
