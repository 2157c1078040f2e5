"""Datasets in their native layouts (CIFAR-10, Speech Commands, VWW), their caches, and tf.data pipelines."""
