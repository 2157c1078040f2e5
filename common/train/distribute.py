"""CPU threads and tf.distribute: the strategy, the worker's role, and two Keras multi-worker fixes.

TensorFlow is imported only on the TensorFlow backend: on another Keras backend (JAX on a GPU) one
process trains on its default device and the strategy is `NoStrategy`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os

import keras

from ..config import TrainConfig
from ..data.pipelines import on_tensorflow

log = logging.getLogger("trecx.train")
PATCHED_KERAS = "3.15."  # the Keras release whose multi-worker bugs multiworker_workarounds patches


class NoStrategy:
    """Stands for tf.distribute's default strategy on a backend without one: one device, no scope."""

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def setup(cfg: TrainConfig):
    """First thing a train script does: CPU threads and the tf.distribute strategy, both of which
    must be set before TensorFlow runs any op."""
    if not on_tensorflow():
        if cfg.strategy != "default":
            raise ValueError(f"--strategy {cfg.strategy} needs the TensorFlow backend, not {keras.backend.backend()}")
        return NoStrategy()
    set_threads(cfg.threads)
    return get_strategy(cfg.strategy)


def set_threads(n: int) -> None:
    """TensorFlow's intra- and inter-op CPU threads (0: all cores); before TensorFlow runs any op."""
    import tensorflow as tf

    if n:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


@functools.cache
def get_strategy(name: str):
    """The tf.distribute strategy, made once. Train scripts call this first thing: a multi-worker
    strategy must exist before TensorFlow runs any op."""
    if not on_tensorflow() and name == "default":
        return NoStrategy()
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy must be default, mirrored or multiworker, got '{name}'")


def worker() -> tuple[bool, int]:
    """(is chief, worker index) from TF_CONFIG; a single process is the chief."""
    cfg = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    kind, idx = cfg.get("type", "worker"), int(cfg.get("index", 0))
    return kind == "chief" or (kind == "worker" and idx == 0), idx


def multiworker_workarounds(model: keras.Model, strategy, batch) -> None:
    """Two Keras 3.15 bugs under MultiWorkerMirroredStrategy, worked around here only:
    1. fit() builds the metrics from a first batch reduced by strategy.reduce over the whole (x, y)
       structure, which this strategy cannot do: build them from one local batch instead.
    2. Scalar logs are reduced with strategy.reduce("MEAN", v, axis=0), which fails on 0-d values:
       reduce those with axis=None (the mean over replicas, which is what is meant)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer  # lazy: TensorFlow backend only

    if not keras.__version__.startswith(PATCHED_KERAS):
        log.warning(f"Keras {keras.__version__}: the multi-worker workarounds were written for {PATCHED_KERAS}x "
                    "and are not applied")
        return
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
