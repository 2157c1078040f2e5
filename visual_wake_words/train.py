"""Train a MobileNetV1 variant on Visual Wake Words: python -m visual_wake_words.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from trecx.commands import train


def main(argv: list[str] | None = None) -> Path:
    return train.main("visual_wake_words", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
