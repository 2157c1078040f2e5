"""The ResNet-8 on CIFAR-10 task: its data for testing and deployment, and its Task spec."""

from __future__ import annotations

from common import tasks
from common.data.images import CIFAR10_CLASSES, load_cifar10
from image_classification import train


def load(data_dir: str, split_seed: int) -> tasks.EvalData:
    """Validation and test images; the MLPerf ResNet-8 is no baseline here: it saw our carved test images
    in training (see README). split.json lists the validation and test files (train: the rest)."""
    return tasks.image_eval_data(load_cifar10(data_dir or None, seed=split_seed), split_seed, ("val", "test"))


TASK = tasks.register(tasks.Task(
    name="image_classification", input_shape=(32, 32, 3), classes=CIFAR10_CLASSES, baseline="baseline",
    load=load, train=train.main, curves={"fig4a_benefit_curves.png": ["trecx", "trecx_noev", "trecx_dwfirst"]},
    violin=("trecx", "pool_ee"), smoke_variants=("baseline", "trecx")))
