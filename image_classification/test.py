"""Evaluate the ResNet-8 models of a folder on CIFAR-10: python -m image_classification.test"""

from __future__ import annotations

from trecx.commands import test


def main(argv: list[str] | None = None) -> list[dict]:
    return test.main("image_classification", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
