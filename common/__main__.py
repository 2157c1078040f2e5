"""`python -m common <command> [options]` (installed: `trecx <command> [options]`) runs a command; without one (or
with `--help`) it lists them."""

from __future__ import annotations

import importlib
import sys

from . import cli
from .commands import COMMANDS
from .errors import ConfigError

TASK_FRONTS = ("train", "test")  # their main takes the task first: python -m <task>.train is the front door


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "\n".join([f"usage: {cli.PROG} <command> [options]   ({cli.PROG} <command> --help: its options)",
                      "", "commands:", *(f"  {name.ljust(width)}  {what}" for name, what in COMMANDS.items())])


def main(argv: list[str]) -> object:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return None
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise ConfigError(f"unknown command '{name}' ({cli.PROG} lists them)")
    module = importlib.import_module(f".commands.{name}", __package__)
    if name in TASK_FRONTS:  # python -m common train --task T ... is python -m T.train ...
        if "--task" not in rest or rest.index("--task") + 1 >= len(rest):
            raise ConfigError(f"{name}: --task TASK is needed (or run python -m <task>.{name})")
        i = rest.index("--task")
        return module.main(rest[i + 1], rest[:i] + rest[i + 2:])
    return module.main(rest)


def entry() -> None:
    """The `trecx` console script of an installed toolkit."""
    cli.run(main, sys.argv[1:])


if __name__ == "__main__":
    entry()
