"""Carry unfinished training runs from one machine to the next, in one file that can be committed.

A run folder resumes from its `backup/` (the last finished epoch), but only on the machine that holds
it. When the next session starts on a new machine, `the runqueue command --carry FILE` restores every
unfinished run folder saved in FILE that this machine lacks, and while the queue trains it saves them
again after each finished epoch (all at once, written whole or not at all). Committing FILE at the
end of a session is then enough for the next one to carry on; a queue with nothing unfinished removes it.

An unfinished run folder is one with a `config.json` and a `backup/` but no `done.json`. What is
carried: the folder's files but the backup's second copies (`*.bkp`) and half-written files.
"""

from __future__ import annotations

import io
import logging
import tarfile
import threading
import time
from pathlib import Path

from common import files
from common.errors import DataError

log = logging.getLogger("trecx.carry")

QUIET_SECONDS = 3.0  # a folder is saved only when none of its files changed for this long (mid-epoch-end writes)


def unfinished_runs(root: Path) -> list[Path]:
    """Run folders under `root` that have started (config.json, backup/) and not finished (no done.json)."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("config.json")
                  if (p.parent / "backup").is_dir() and not (p.parent / "done.json").exists())


def _members(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*") if p.is_file() and not p.name.endswith(".bkp")
                  and not p.name.startswith(".") and "partial" not in p.name)


def _signature(paths: list[Path]) -> tuple:
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.exists()]
    return tuple(stats)


def save(archive: Path, root: Path) -> int | None:
    """Write every unfinished run folder under `root` into `archive` (paths relative to `root`); returns
    how many were saved, or None when a file changed meanwhile (try again later). With none to save,
    `archive` is removed."""
    runs = unfinished_runs(root)
    if not runs:
        if archive.exists():
            archive.unlink()
            log.info("no unfinished run left: removed %s", archive)
        return 0
    members = [m for run in runs for m in _members(run)]
    before = _signature(members)
    if any(time.time() - mtime / 1e9 < QUIET_SECONDS for _, _, mtime in before):
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for m in members:
            tar.add(m, arcname=str(m.relative_to(root)))
    if _signature(members) != before:  # an epoch ended while reading: the copy may mix two epochs
        return None
    with files.atomic(archive) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return len(runs)


def restore(archive: Path, root: Path) -> list[str]:
    """Extract from `archive` each run folder that `root` does not have yet; returns their names. A run
    folder this machine already has is newer or the same, and is left alone."""
    if not archive.exists():
        return []
    try:
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            runs = sorted({str(Path(n).parent) for n in names if Path(n).name == "config.json"})
            todo = [r for r in runs if not (root / r).exists()]
            chosen = [m for m in tar.getmembers() if any(m.name.startswith(r + "/") for r in todo)]
            tar.extractall(root, members=chosen, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot restore unfinished runs from {archive}: {e}") from e
    for r in todo:
        log.info("restored unfinished run %s from %s", root / r, archive)
    return todo


class Saver(threading.Thread):
    """Saves the unfinished runs under `root` into `archive` whenever one of them finished an epoch."""

    def __init__(self, archive: Path, root: Path, every: float = 20.0):
        super().__init__(daemon=True)
        self.archive, self.root, self.every = archive, root, every
        self.done = threading.Event()
        self.last: tuple = ()

    def save_now(self) -> None:
        """Save when something changed since the last save (and it is not being written)."""
        current = _signature([m for run in unfinished_runs(self.root) for m in _members(run)])
        if current == self.last and (current or not self.archive.exists()):
            return
        try:
            if save(self.archive, self.root) is not None:
                self.last = current
        except OSError as e:  # a folder removed while reading (a run that just finished): next round
            log.warning("could not save unfinished runs to %s yet (%s)", self.archive, e)

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.save_now()

    def stop(self) -> None:
        self.done.set()
        for _ in range(10):  # the last finished epoch, once the stopped trainings left their files alone
            if save(self.archive, self.root) is not None:
                return
            time.sleep(QUIET_SECONDS)
