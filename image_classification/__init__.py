"""ResNet-8 on CIFAR-10 (MLPerf Tiny image classification)."""
