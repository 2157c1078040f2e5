"""Files written whole or not at all, and files read with errors that name them.

Every model, cache and results file goes through `atomic`: the content is written to a temporary
file in the same folder, then renamed over the target, so an interrupted run leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ModelFileError

log = logging.getLogger("trecx.files")


@contextlib.contextmanager
def atomic(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that check it accept it);
    on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")  # ends as the target does (.weights.h5, .keras)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) for the block: two processes that build
    the same cache (two trainings started side by side on a new machine) take turns, and the second
    finds the first one's result instead of building it again."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: Path | str, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def savez(path: Path | str, compressed: bool = False, **arrays: np.ndarray) -> None:
    with atomic(path) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)


def load_npz(path: Path | str) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None (with a warning naming it) when it is unreadable: the
    caller rebuilds a cache rather than fail on it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        log.warning("cache file %s is unreadable (%s); rebuilding it", path, type(e).__name__)
        return None


def read_tflite(path: Path | str) -> bytes:
    """A `.tflite` flatbuffer's bytes, checked by its identifier ("TFL3") and by LiteRT's verifier."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"TFLite file {path} does not exist")
    content = path.read_bytes()
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ModelFileError(f"TFLite file {path} is not a TFLite flatbuffer (another format)")
    from ai_edge_litert.interpreter import Interpreter

    try:  # a truncated file keeps its identifier: only the interpreter's verifier tells
        Interpreter(model_content=content).allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelFileError(f"TFLite file {path} is truncated or damaged: {str(e).splitlines()[0][:160]}") from e
    return content


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return None if v == "" else v
