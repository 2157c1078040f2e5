"""Run by test_strategy.py in its own process: a few training steps of the KWS T-RecX model on
synthetic MFCCs under a tf.distribute strategy, then print the replica count."""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf


def main(strategy: str, out_dir: str) -> None:
    if strategy == "mirrored":  # two logical CPU devices, set before TF starts
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from common.train.training import TrainConfig, get_strategy, train

    get_strategy(strategy)  # before any TF op
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 49, 10, 1)).astype("float32")
    y = rng.integers(0, 12, 64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    cfg = TrainConfig(variant="trecx", out_dir=out_dir, epochs=2, steps_per_epoch=2, batch_size=16,
                      strategy=strategy)
    run = train(cfg, "keyword_spotting", ds.repeat(), ds)
    print(f"REPLICAS {get_strategy(strategy).num_replicas_in_sync} RUN {run}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
