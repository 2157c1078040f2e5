"""The one top-level handler of every program (`python -m <task>.train`, `python -m common deploy`, ...).

    if __name__ == "__main__":
        cli.run(main)

Known errors (bad data, options or model files: `common.errors.TrecxError`) print one line,
`error: <what>`, on stderr and exit with status 2; `--debug` shows the traceback instead.
`--quiet` shows warnings only, `--verbose` debug messages and TensorFlow's own start-up logs
(which are silenced by default, see `common/__init__.py`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import TrecxError

FLAGS = ("--debug", "--quiet", "--verbose")
PROG = "python -m common" if __name__.startswith("common.") else "trecx"  # how a user runs a command here


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so a redirected stderr is followed)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def setup_logging(argv: list[str]) -> None:
    level = logging.WARNING if "--quiet" in argv else logging.DEBUG if "--verbose" in argv else logging.INFO
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("absl").setLevel(logging.WARNING if "--verbose" in argv else logging.ERROR)
    # TensorFlow's Python logger has a handler of its own: without --verbose its INFO notices (SavedModel
    # assets written) stay out, and what it does say is said once, through the handler above
    tf_log = logging.getLogger("tensorflow")
    tf_log.setLevel(logging.DEBUG if "--verbose" in argv else logging.WARNING)
    tf_log.handlers.clear()


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Call `main(argv)` without the flags above; turn a known error into one line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(argv)
    debug = "--debug" in argv
    try:
        main([a for a in argv if a not in FLAGS])
    except TrecxError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
