"""A quiet console: the C++ runtimes under TensorFlow and LiteRT print banners and notices straight to the
process's standard streams (TensorFlow's oneDNN and absl start-up lines, the converter's quantization
settings, the XNNPACK delegate notice), before or beside any Python log level. `quiet()` points those
file descriptors at /dev/null around such a call; `--verbose` (common.cli) leaves them alone."""

from __future__ import annotations

import contextlib
import os
import sys

VERBOSE = "--verbose" in sys.argv  # the command line's own switch, read before anything is imported


@contextlib.contextmanager
def quiet(fds: tuple[int, ...] = (1, 2)):
    """File descriptors `fds` on /dev/null for the duration (nothing changes with --verbose). Python
    exceptions still reach the caller; Python's own prints in the block are lost, so keep it small."""
    if VERBOSE:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in fds]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)
