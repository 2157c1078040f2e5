"""Evaluate the MobileNetV1 models of a folder on Visual Wake Words: python -m visual_wake_words.test"""

from __future__ import annotations

from trecx.commands import test


def main(argv: list[str] | None = None) -> list[dict]:
    return test.main("visual_wake_words", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
