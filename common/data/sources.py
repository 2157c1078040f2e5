"""Find a dataset in its native layout, from a folder or a .tar.gz, with a checksum-keyed cache.

Archives are extracted once into the ignored cache folder, under a name keyed by the archive's
SHA-256, so a changed archive is never confused with an old extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError, DataNotFound
from ..files import load_npz, locked, savez

log = logging.getLogger("trecx.data")

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# The archives of this project's ../shared/datasets: each a subset or re-encoding of the full dataset
# (see their SOURCE.txt), so results on them are flagged as such.
LOCAL_SUBSETS = ("cifar10_train_jpg.tar.gz", "speech_commands_v0.02_subset.tar.gz", "vww_96_1000.tar.gz")


def is_local_subset(info: dict) -> bool:
    """Whether a data record (`source` as recorded) names one of the LOCAL_SUBSETS archives."""
    return Path(str(info.get("source", ""))).name in LOCAL_SUBSETS


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def folder_key(path: Path) -> str:
    """Cheap fingerprint of a folder: every file's relative path, size and mtime."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            rel = os.path.relpath(os.path.join(root, name), path)
            h.update(f"{rel}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def _search(base: Path, is_root: Callable[[Path], bool], depth: int = 3) -> Path | None:
    """Breadth-first search for the first folder under `base` (itself included) that is a root."""
    level = [base]
    for _ in range(depth + 1):
        for p in level:
            if is_root(p):
                return p
        level = sorted(c for p in level for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
    return None


def _archives(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    return sorted(p for p in base.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))


def extract(archive: Path, cache: Path, name: str) -> Path:
    """Extract `archive` into cache/<name>-<sha16>/ once; later calls return the folder at once.
    Processes extracting the same archive at the same time take turns (a lock file beside it)."""
    target = cache / f"{name}-{file_sha256(archive)[:16]}"
    if (target / ".complete").exists():
        return target
    with locked(target.with_name(f".{target.name}.lock")):
        if (target / ".complete").exists():  # another process finished it while this one waited
            return target
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log.info(f"extracting {archive} -> {target}")
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"cannot extract archive {archive}: {e}") from e
        (tmp / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def locate(data_dir: Path | str, name: str, is_root: Callable[[Path], bool], cache: Path) -> tuple[Path, str, Path]:
    """Return (root folder in native layout, cache key, the folder or archive it came from).

    Looks at `data_dir` itself, then `data_dir/name`, as folders first and then for archives.
    Raises DataError naming what was searched when nothing fits.
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DataNotFound(f"{name}: data root {data_dir} does not exist (set --data-dir or TRECX_DATA)")
    bases = [data_dir] if data_dir.is_file() else [data_dir, data_dir / name]
    for base in bases:
        if base.is_dir():
            root = _search(base, is_root, depth=2)
            if root is not None:
                return root, folder_key(root), root
    for base in bases:
        if not base.exists():
            continue
        for archive in _archives(base):
            folder = extract(archive, cache, name)
            root = _search(folder, is_root)
            if root is not None:
                return root, file_sha256(archive), archive
    looked = ", ".join(map(str, bases))
    raise DataNotFound(f"{name}: no dataset in its native layout under {data_dir} (looked in {looked})")


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load arrays from `path` (.npz) or build and save them (atomically); an unreadable cache file
    is rebuilt, with a warning naming it. Processes building the same cache take turns."""
    if path.exists() and (arrays := load_npz(path)) is not None:
        return arrays
    with locked(path.with_name(f".{path.name}.lock")):
        if path.exists() and (arrays := load_npz(path)) is not None:  # built while this one waited
            return arrays
        arrays = build()
        savez(path, **arrays)
    return arrays


@contextlib.contextmanager
def tfds_download(name: str, cache: Path, no_local: str) -> Iterator[tuple[object, Path]]:
    """Yield (tensorflow_datasets, its data folder under `cache`) for downloading `name` when there
    is no local copy (`no_local` says why). Temporary files go to a folder in the cache that is
    removed afterwards; any failure becomes one DataError with both reasons."""
    cache.mkdir(parents=True, exist_ok=True)
    tmp, before = Path(tempfile.mkdtemp(prefix="tfds-tmp-", dir=cache)), tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        import tensorflow_datasets as tfds

        yield tfds, cache / "tensorflow_datasets"
    except DataError:
        raise
    except Exception as e:  # tfds raises many kinds (offline: requests' ConnectionError)
        reason = (str(e).splitlines() or [""])[0][:200]
        raise DataError(f"{no_local}; the tensorflow-datasets download of '{name}' failed too "
                        f"({type(e).__name__}: {reason})") from e
    finally:
        tempfile.tempdir = before
        shutil.rmtree(tmp, ignore_errors=True)


def stratified_split(labels: np.ndarray, sizes: dict[str, float], seed: int,
                     allow_empty: bool = False) -> dict[str, np.ndarray]:
    """Seeded stratified split of indices. `sizes` maps subset -> fraction; the last subset takes the rest.

    Within each class, indices are shuffled once and cut by the cumulative fractions, so every subset
    keeps the class balance and the same seed always gives the same split.
    """
    if any(v < 0 for v in sizes.values()) or sum(sizes.values()) > 1 + 1e-9:
        raise ValueError(f"split fractions must be >= 0 and sum to <= 1, got {sizes}")
    rng = np.random.default_rng(seed)
    names = list(sizes)
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum([sizes[n] for n in names[:-1]]) * len(idx)).astype(int)
        for n, part in zip(names, np.split(idx, cuts), strict=True):
            out[n].append(part)
    split = {n: np.sort(np.concatenate(parts)) for n, parts in out.items()}
    empty = [n for n in names if len(split[n]) == 0 and (sizes[n] > 0 or n == names[-1])]
    if empty and not allow_empty:
        raise DataError(f"the {empty[0]} split is empty: {len(labels)} samples are too few for the split fractions "
                        f"{sizes} (see --val-fraction / --test-fraction)")
    return split
