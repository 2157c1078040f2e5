"""The training loop shared by every task: seeding, the joint loss, recipes, callbacks, the head-only and
joint phases (its run folder's bookkeeping is in `train.runs`); `train_exit`, the same joint training for an exit
on a user's own network (the API's `trecx.train_exit`)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import keras
import numpy as np

from .. import files, paths
from ..config import TrainConfig, save_run_info
from ..data.pipelines import ArrayBatches
from ..errors import DataError, ModelError, TrecxError
from ..models import contract, registry
from ..models.contract import load_model
from ..models.layers import ev_pairs
from ..models.losses import SmoothedSparseCE
from ..models.prior import LAMBDA, MixtureLoss
from ..models.weights import reference_model, warm_start
from . import runs
from .callbacks import BackboneDrift, EpochTimer, EVWeightTransfer, RawWeights, checkpoints
from .distill import Distiller, student_of
from .distribute import get_strategy, multiworker_workarounds, on_tensorflow, worker

log = logging.getLogger("trecx.train")


def finish(ds):
    """Pipeline options used everywhere: no autotune (slower here), shard by data across workers."""
    if isinstance(ds, ArrayBatches):
        return ds
    import tensorflow as tf

    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def keyed(ds, names: list[str]):
    """(x, y) -> (x, {output name: y}): the same label for every exit."""
    if isinstance(ds, ArrayBatches):
        return ds.keyed(names)
    return ds.map(lambda x, y: (x, {n: y for n in names}))


def compile_model(model: keras.Model, loss_weights: dict[str, float], optimizer, cost_lambda: float = LAMBDA,
                  label_smoothing: float = 0.0) -> None:
    """Joint loss: sum over exits of weight x cross-entropy, as Keras output-keyed losses (no loop
    over the batch, so any batch size works). A `mixture` output (EENets, PTEENet) takes the
    cost-aware MixtureLoss; confidence heads get no loss of their own (they train through it)."""
    spec = student_of(model)  # a Distiller compiles the losses of the student's outputs
    names = [n for n in spec.output_names if n in contract.exit_names(spec) or n == contract.MIXTURE]
    ce = SmoothedSparseCE(label_smoothing) if label_smoothing else keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer,
                  loss={n: MixtureLoss(cost_lambda) if n == contract.MIXTURE else ce for n in names},
                  loss_weights={n: loss_weights.get(n, 1.0) for n in names},
                  metrics={n: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for n in names
                           if n != contract.MIXTURE})


def _schedule(cfg: TrainConfig):
    """Learning rate per epoch, counted from the end of the head-only phase: a linear warm-up over
    `warmup_epochs` (reaching `lr` at its last epoch), then the named schedule over the rest."""
    warm = cfg.warmup_epochs
    start, span = cfg.head_epochs + warm, max(cfg.epochs - cfg.head_epochs - warm, 1)

    def rate(epoch: int, lr=None) -> float:
        if epoch < start:
            return cfg.lr * (epoch - cfg.head_epochs + 1) / (warm + 1)
        t = epoch - start
        if cfg.lr_schedule == "exp99":
            return cfg.lr * 0.99**t
        if cfg.lr_schedule == "cosine":
            return float(cfg.lr * 0.5 * (1 + np.cos(np.pi * t / span)))
        return cfg.lr

    return rate


def make_optimizer(cfg: TrainConfig, lr: float) -> keras.optimizers.Optimizer:
    """The optimizer of `cfg` at learning rate `lr` (the scheduler sets it per epoch)."""
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    wd = cfg.weight_decay or None
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd, **ema)
    else:  # "adam" (TrainConfig checks the name)
        opt = keras.optimizers.Adam(lr, weight_decay=wd, **ema)
    if wd:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def _freeze_backbone(model: keras.Model, frozen: bool, final: bool = True) -> None:
    """Freeze every layer but the exit heads and (when `final`) the final classifier; frozen batch
    norm runs in inference mode, so the warm-started statistics stay as they are."""
    for layer in model.layers:
        if not (contract.is_head(layer.name) or (final and layer.name.startswith(contract.FINAL))):
            layer.trainable = not frozen


@dataclasses.dataclass
class _Run:
    """One run's model, data and callbacks, trained in up to two phases by `phases`."""

    cfg: TrainConfig
    variant: registry.Variant
    model: keras.Model  # the model that is saved
    fit_model: keras.Model  # what trains: the model, or a Distiller around it
    strategy: object  # a tf.distribute.Strategy, or NoStrategy on another backend
    train_ds: object  # a tf.data.Dataset, or ArrayBatches on another backend
    val_ds: object
    out: Path
    monitor: tuple[str, str]  # (metric, "min" or "max") that picks best.keras
    callbacks: list  # shared by every phase, adding to the logs or changing weights: timer, EV transfer, ...
    log: keras.callbacks.CSVLogger  # the run's log.csv, shared by every phase
    best: float = float("nan")  # the kept model's monitored value

    def fit(self, first: int, last: int, lr: float, backup: str, schedule, main: bool = True,
            best_from: int = 0) -> None:
        """Epochs first..last-1; the head-only phase (`main` False) uses plain Adam at `lr`. The kept
        model is the best since epoch `best_from`."""
        cfg = self.cfg
        recipe = cfg if main else dataclasses.replace(cfg, optimizer="adam", weight_decay=0.0, ema=0.0)
        with self.strategy.scope():
            compile_model(self.fit_model, self.variant.weights_for(self.model), make_optimizer(recipe, lr),
                          cfg.cost_lambda, cfg.label_smoothing)
        if _multiworker(self.strategy):
            multiworker_workarounds(self.fit_model, self.strategy, next(iter(self.train_ds)))
        keep = checkpoints(self.out, *self.monitor, from_epoch=best_from)
        ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if recipe.ema else []
        # Order matters at an epoch's end: what adds to the logs; the best model saved (with the EMA
        # weights swapped in, then out); the log row; last the backup, which marks the epoch done, so a
        # kill anywhere before it re-runs the epoch instead of losing its checkpoint or its log row.
        # double_checkpoint: a kill while the backup is written leaves the one before it to resume from.
        callbacks = [keras.callbacks.LearningRateScheduler(schedule), *self.callbacks, *ema, *keep,
                     *(RawWeights(e) for e in ema), self.log,
                     keras.callbacks.BackupAndRestore(str(self.out / backup), double_checkpoint=True)]
        self.fit_model.fit(self.train_ds, validation_data=self.val_ds, initial_epoch=first, epochs=last,
                           steps_per_epoch=cfg.steps_per_epoch or None, callbacks=callbacks,
                           verbose=1 if sys.stdout.isatty() else 2, shuffle=False)  # datasets shuffle themselves
        self.best = float(keep[0].best)

    def phases(self) -> None:
        """PTEENet: the exit heads only, all epochs. Otherwise an optional head-only phase on the frozen
        warm-started backbone (done once: its weights are kept for a resume), then joint training, whose
        best epoch alone is kept with --keep-joint."""
        cfg, model = self.cfg, self.model
        if self.variant.post_trained:  # only the exit heads ever train, the final classifier included
            _freeze_backbone(model, True, final=False)
            self.fit(0, cfg.epochs, cfg.head_lr, "backup", lambda epoch, lr: cfg.head_lr, main=False)
            return
        if cfg.head_epochs:
            heads_done = self.out / "heads.weights.h5"
            if heads_done.exists():
                model.load_weights(heads_done)
            else:
                _freeze_backbone(model, True)
                self.fit(0, cfg.head_epochs, cfg.head_lr, "backup_heads", lambda epoch, lr: cfg.head_lr, main=False)
                _freeze_backbone(model, False)
                with files.atomic(heads_done) as tmp:
                    model.save_weights(tmp)
        self.fit(cfg.head_epochs, cfg.epochs, cfg.lr, "backup", _schedule(cfg),
                 best_from=cfg.head_epochs if cfg.keep_joint else 0)


def _teacher(cfg: TrainConfig, task: str) -> keras.Model | None:
    """The frozen teacher of --teacher: a .keras model, else an MLPerf reference (SavedModel or .h5)
    loaded into the task's baseline builder."""
    if not cfg.teacher:
        return None
    if cfg.teacher.endswith(".keras"):
        return load_model(paths.resolve(cfg.teacher))
    return reference_model(task, cfg.teacher)


def _multiworker(strategy) -> bool:
    if not on_tensorflow():
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _batches(ds) -> int:
    return len(ds) if isinstance(ds, ArrayBatches) else int(ds.cardinality())


def train(cfg: TrainConfig, task: str, train_ds, val_ds, info: dict | None = None) -> Path:
    """Train `cfg.variant` of `task` on batched (x, y) datasets (tf.data, or ArrayBatches off the
    TensorFlow backend); returns the run folder."""
    strategy = get_strategy(cfg.strategy)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic and on_tensorflow():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    variant = registry.get(task, cfg.variant)
    for split, ds in (("training", train_ds), ("validation", val_ds)):
        if _batches(ds) == 0:
            raise DataError(f"the {split} split is empty: the data is too small for its split fractions")
    chief, index = worker()
    out = runs.run_dir(cfg, task) if chief else runs.run_dir(cfg, task) / f"worker{index}"
    runs.check_resume(cfg, out)
    if chief and runs.already_published(cfg, task, out):
        return out
    if (out / "done.json").exists():
        log.info(f"{out} is a finished run (delete its done.json to train again)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_run_info(out, cfg, {"task": task, "data": info or {}})
        with strategy.scope():
            model = variant.builder()
            if cfg.init_from:
                log.info(f"copied {warm_start(model, cfg.init_from)} layers from {cfg.init_from}")
            fit_model = model
            if cfg.teacher or cfg.self_distill:
                fit_model = Distiller(model, _teacher(cfg, task), variant.weights_for(model), cfg.distill_weight,
                                      cfg.temperature, cfg.self_distill)
        names = list(model.output_names)
        # A multi-exit model is kept by its joint validation loss: by the final exit's accuracy alone, the
        # best epoch can come before the early exit has learnt anything.
        monitor = ("val_loss", "min") if len(names) > 1 else ("val_accuracy", "max")
        callbacks = [EpochTimer()]
        if cfg.init_from:  # how far joint training moves the warm-started backbone
            callbacks.append(BackboneDrift(out / "init_backbone.npz"))
        if variant.weight_transfer:
            callbacks.append(EVWeightTransfer(until_fraction=cfg.transfer_until, total_epochs=cfg.epochs))
        run = _Run(cfg, variant, model, fit_model, strategy, finish(keyed(train_ds, names)),
                   finish(keyed(val_ds, names)), out, monitor, callbacks,
                   keras.callbacks.CSVLogger(str(out / "log.csv"), append=True))
        run.phases()
        if not (out / "best.keras").exists():
            raise TrecxError(f"run {out} kept no model: no epoch gave a finite {monitor[0]} (the loss diverged?)")
        files.write_json(out / "done.json", {"epochs": cfg.epochs, "best": run.best})
    if chief and cfg.publish:
        runs.publish(out, task, cfg.publish_as or cfg.variant)
    return out


def train_exit(model: keras.Model, train_ds, val_ds=None, epochs: int = 10, w_ee: float | list[float] = 0.5,
               post_training: bool = False, optimizer: keras.optimizers.Optimizer | None = None,
               transfer_until: float = 0.8, callbacks: list | None = None) -> keras.callbacks.History:
    """Train an attached exit on batched (x, y) data (y: class indices). Joint training: loss = w_ee x
    CE(early) + CE(final) (with several exits, `w_ee` one weight for all or a list, one per exit), each EE
    depthwise kernel copied into its EV layer after every batch for the first `transfer_until` of the epochs.
    `post_training`: only the exit heads and the final classifier train, the backbone stays as it is
    (PTEENet-style, for a model you cannot retrain). The returned History records what each dataset was read for
    (`history.data_read`): data it read cannot certify this model's thresholds (docs/calibration.md)."""
    names = contract.exit_names(model)
    if post_training:  # otherwise the layers keep the trainable flags they came with (frozen ones stay frozen)
        for layer in model.layers:
            layer.trainable = contract.is_head(layer.name) or layer.name == contract.FINAL
    weights = list(w_ee) if isinstance(w_ee, (list, tuple)) else [w_ee] * (len(names) - 1)
    if len(weights) != len(names) - 1:
        raise ModelError(f"model '{model.name}' has {len(names) - 1} early exits but w_ee gives {len(weights)} weights")
    compile_model(model, dict(zip(names[:-1], weights, strict=True)) | {contract.FINAL: 1.0},
                  optimizer or keras.optimizers.Adam(1e-3))
    extra = [EVWeightTransfer(until_fraction=transfer_until, total_epochs=epochs)] if ev_pairs(model) else []
    history = model.fit(keyed(train_ds, names), validation_data=None if val_ds is None else keyed(val_ds, names),
                        epochs=epochs, callbacks=[*extra, *(callbacks or [])], verbose=2)
    history.data_read = {"train_ds": "trained the weights",
                         "val_ds": None if val_ds is None else "evaluated every epoch (and read by any callback that "
                                                               "keeps or stops on it): a choice, not certification"}
    return history
