"""Training shared by every task: seeding, tf.distribute strategies, joint loss, callbacks.

A run folder holds: backup/ (BackupAndRestore, so a killed run resumes from its last epoch),
best.keras (best joint validation loss; for one-exit models, best validation accuracy), log.csv,
config.json, versions.json and, once finished, done.json.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import paths, registry
from common.callbacks import EVWeightTransfer
from common.config import save_run_info
from common.flops import exit_names
from common.prior import LAMBDA, MixtureLoss
from common.weights import HEADS, warm_start


@dataclass
class TrainConfig:
    """Fields shared by every task's config; each task's config.py subclasses it."""

    variant: str = "trecx"  # registered model variant (common.registry.names(task))
    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    out_dir: str = ""  # run folder; "" = runs/<task>/<variant>
    publish: bool = False  # copy best.keras, config and log to pretrained/<task>/ when done
    publish_as: str = ""  # name under pretrained/<task>/; "" = the variant's name
    init_from: str = ""  # warm start: .keras, Keras 2 .h5 or SavedModel whose backbone is copied in
    epochs: int = 100  # training epochs
    steps_per_epoch: int = 0  # 0 = the whole training split per epoch (smoke runs use a few steps)
    batch_size: int = 32  # global batch size
    lr: float = 1e-3  # peak learning rate (Adam)
    lr_schedule: str = "exp99"  # "exp99": x0.99 per epoch (MLPerf Tiny); "cosine": cosine decay to 0
    head_epochs: int = 0  # first epochs train only the exit heads and final classifier (backbone frozen)
    head_lr: float = 1e-3  # constant learning rate of those head-only epochs
    transfer_until: float = 0.8  # fraction of epochs with EE->EV weight transfer (T-RecX)
    cost_lambda: float = LAMBDA  # weight of the expected-cost term in the EENets/PTEENet loss
    seed: int = 0  # seeds Python, NumPy and TF (weights, shuffling, augmentation)
    split_seed: int = 0  # seeds the data split; keep it fixed so test.py sees the same test set
    deterministic: bool = False  # TF op determinism (slower)
    strategy: str = "default"  # "default", "mirrored" (this machine's devices) or "multiworker" (TF_CONFIG)


@functools.cache
def get_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy, made once. Train scripts call this first thing: a multi-worker
    strategy must exist before TensorFlow runs any op."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy must be default, mirrored or multiworker, got '{name}'")


def _worker() -> tuple[bool, int]:
    """(is chief, worker index) from TF_CONFIG; a single process is the chief."""
    cfg = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    kind, idx = cfg.get("type", "worker"), int(cfg.get("index", 0))
    return kind == "chief" or (kind == "worker" and idx == 0), idx


def _multiworker_workarounds(model: keras.Model, strategy: tf.distribute.Strategy, batch) -> None:
    """Two Keras 3.15 bugs under MultiWorkerMirroredStrategy, worked around here only:
    1. fit() builds the metrics from a first batch reduced by strategy.reduce over the whole (x, y)
       structure, which this strategy cannot do: build them from one local batch instead.
    2. Scalar logs are reduced with strategy.reduce("MEAN", v, axis=0), which fails on 0-d values:
       reduce those with axis=None (the mean over replicas, which is what is meant)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    original = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    @functools.wraps(original)
    def reduce_per_replica(values, strat, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strat):
            def one(v):
                rank = (strat.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues)
                        else v).shape.rank
                return strat.reduce("MEAN", v, axis=None if rank == 0 else 0)
            return tf.nest.map_structure(one, values)
        return original(values, strat, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica


def finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Pipeline options used everywhere: no autotune (slower here), shard by data across workers."""
    opts = tf.data.Options()
    opts.autotune.enabled = False
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def keyed(ds: tf.data.Dataset, names: list[str]) -> tf.data.Dataset:
    """(x, y) -> (x, {output name: y}): the same label for every exit."""
    return ds.map(lambda x, y: (x, {n: y for n in names}))


def compile_model(model: keras.Model, loss_weights: dict[str, float], optimizer, cost_lambda: float = LAMBDA) -> None:
    """Joint loss: sum over exits of weight x cross-entropy, as Keras output-keyed losses (no loop
    over the batch, so any batch size works). A `mixture` output (EENets, PTEENet) takes the
    cost-aware MixtureLoss; confidence heads get no loss of their own (they train through it)."""
    names = [n for n in model.output_names if n in exit_names(model) or n == "mixture"]
    model.compile(optimizer=optimizer,
                  loss={n: MixtureLoss(cost_lambda) if n == "mixture" else keras.losses.SparseCategoricalCrossentropy()
                        for n in names},
                  loss_weights={n: loss_weights.get(n, 1.0) for n in names},
                  metrics={n: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for n in names
                           if n != "mixture"})


def _schedule(cfg: TrainConfig):
    """Learning rate per epoch, counted from the end of the head-only phase."""
    start, span = cfg.head_epochs, max(cfg.epochs - cfg.head_epochs, 1)
    if cfg.lr_schedule == "exp99":
        return lambda epoch, lr: cfg.lr * 0.99 ** (epoch - start)
    if cfg.lr_schedule == "cosine":
        return lambda epoch, lr: cfg.lr * 0.5 * (1 + np.cos(np.pi * (epoch - start) / span))
    if cfg.lr_schedule == "constant":
        return lambda epoch, lr: cfg.lr
    raise ValueError(f"--lr-schedule must be exp99, cosine or constant, got '{cfg.lr_schedule}'")


def _best_so_far(log: Path, monitor: str, mode: str) -> float:
    """Best value of `monitor` in an earlier part of this run's log, or the worst possible value."""
    worst = -np.inf if mode == "max" else np.inf
    if not log.exists():
        return worst
    import csv

    with open(log) as f:
        values = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor)]
    return (max if mode == "max" else min)(values, default=worst)


def _freeze_backbone(model: keras.Model, frozen: bool, final: bool = True) -> None:
    """Freeze every layer but the exit heads and (when `final`) the final classifier; frozen batch
    norm runs in inference mode, so the warm-started statistics stay as they are."""
    for layer in model.layers:
        if not layer.name.startswith(HEADS + (("final",) if final else ())):
            layer.trainable = not frozen


def run_dir(cfg: TrainConfig, task: str) -> Path:
    return Path(cfg.out_dir) if cfg.out_dir else paths.REPO / "runs" / task / cfg.variant


def train(cfg: TrainConfig, task: str, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
          info: dict | None = None) -> Path:
    """Train `cfg.variant` of `task` on batched (x, y) datasets; returns the run folder."""
    strategy = get_strategy(cfg.strategy)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    variant = registry.get(task, cfg.variant)
    chief, index = _worker()
    out = run_dir(cfg, task) if chief else run_dir(cfg, task) / f"worker{index}"
    if (out / "done.json").exists():
        print(f"[train] {out} is a finished run (delete its done.json to train again)", flush=True)
        if chief and cfg.publish:
            publish(out, task, cfg.publish_as or cfg.variant)
        return out
    out.mkdir(parents=True, exist_ok=True)
    save_run_info(out, cfg, {"task": task, "data": info or {}})
    with strategy.scope():
        model = variant.builder()
        if cfg.init_from:
            n = warm_start(model, cfg.init_from)
            print(f"[init] copied {n} layers from {cfg.init_from}", flush=True)
    names = list(model.output_names)
    # A multi-exit model is kept by its joint validation loss: by the final exit's accuracy alone, the
    # best epoch can come before the early exit has learnt anything.
    monitor, mode = ("val_loss", "min") if len(names) > 1 else ("val_accuracy", "max")
    checkpoint = keras.callbacks.ModelCheckpoint(str(out / "best.keras"), monitor=monitor, mode=mode,
                                                 save_best_only=True)
    checkpoint.best = _best_so_far(out / "log.csv", monitor, mode)  # a resumed run keeps its best model
    shared = [checkpoint, keras.callbacks.CSVLogger(str(out / "log.csv"), append=True)]
    if variant.weight_transfer:
        shared.append(EVWeightTransfer(until_fraction=cfg.transfer_until, total_epochs=cfg.epochs))
    train_ds, val_ds = finish(keyed(train_ds, names)), finish(keyed(val_ds, names))

    def fit(first: int, last: int, lr: float, backup: str, schedule) -> None:
        with strategy.scope():
            compile_model(model, variant.weights_for(model), keras.optimizers.Adam(lr), cfg.cost_lambda)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            _multiworker_workarounds(model, strategy, next(iter(train_ds)))
        callbacks = [keras.callbacks.BackupAndRestore(str(out / backup)),
                     keras.callbacks.LearningRateScheduler(schedule), *shared]
        model.fit(train_ds, validation_data=val_ds, initial_epoch=first, epochs=last,
                  steps_per_epoch=cfg.steps_per_epoch or None, callbacks=callbacks,
                  verbose=1 if sys.stdout.isatty() else 2, shuffle=False)  # datasets shuffle themselves

    if variant.post_trained:  # PTEENet: only the exit heads ever train, the final classifier included
        _freeze_backbone(model, True, final=False)
        fit(0, cfg.epochs, cfg.head_lr, "backup", lambda epoch, lr: cfg.head_lr)
    elif cfg.head_epochs:  # phase 1: new exit heads only, on a frozen warm-started backbone
        heads_done = out / "heads.weights.h5"
        if heads_done.exists():
            model.load_weights(heads_done)
        else:
            _freeze_backbone(model, True)
            fit(0, cfg.head_epochs, cfg.head_lr, "backup_heads", lambda epoch, lr: cfg.head_lr)
            _freeze_backbone(model, False)
            model.save_weights(heads_done)
    if not variant.post_trained:
        fit(cfg.head_epochs, cfg.epochs, cfg.lr, "backup", _schedule(cfg))
    (out / "done.json").write_text(json.dumps({"epochs": cfg.epochs, "best": float(checkpoint.best)}))
    if chief and cfg.publish:
        publish(out, task, cfg.publish_as or cfg.variant)
    return out


def publish(run: Path, task: str, variant: str) -> Path:
    """Copy a run's best model, config and log to pretrained/<task>/<variant>.*"""
    dest = paths.REPO / "pretrained" / task
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "best.keras", dest / f"{variant}.keras")
    for name in ("config.json", "log.csv", "versions.json"):
        if (run / name).exists():
            shutil.copy(run / name, dest / f"{variant}.{name}")
    return dest / f"{variant}.keras"
