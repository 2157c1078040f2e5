"""Evaluate the ResNet-8 models of a folder on CIFAR-10: python -m image_classification.test"""

from __future__ import annotations

from common.evaluation import report


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main("image_classification", argv, doc=__doc__)


if __name__ == "__main__":
    from common import cli

    cli.run(main)
