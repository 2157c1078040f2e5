"""Evaluate the DS-CNN models of a folder on Speech Commands: python -m keyword_spotting.test"""

from __future__ import annotations

from trecx.commands import test


def main(argv: list[str] | None = None) -> list[dict]:
    return test.main("keyword_spotting", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
