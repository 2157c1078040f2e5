"""Train a DS-CNN variant on Speech Commands: python -m keyword_spotting.train --variant trecx"""

from __future__ import annotations

from pathlib import Path

from trecx.commands import train


def main(argv: list[str] | None = None) -> Path:
    return train.main("keyword_spotting", argv, description=__doc__)


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
