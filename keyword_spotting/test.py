"""Evaluate the DS-CNN models of a folder on Speech Commands: python -m keyword_spotting.test"""

from __future__ import annotations

from common.evaluation import report


def main(argv: list[str] | None = None) -> list[dict]:
    return report.main("keyword_spotting", argv, doc=__doc__)


if __name__ == "__main__":
    from common import cli

    cli.run(main)
