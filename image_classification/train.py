"""Train a ResNet-8 variant on CIFAR-10: python -m image_classification.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from trecx.commands import train


def main(argv: list[str] | None = None) -> Path:
    return train.main("image_classification", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
