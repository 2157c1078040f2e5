"""Find a dataset in its native layout, from a folder or a .tar.gz, with a checksum-keyed cache.

Archives are extracted once into the ignored cache folder, under a name keyed by the archive's
SHA-256, so a changed archive is never confused with an old extraction.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


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
    """Extract `archive` into cache/<name>-<sha16>/ once; later calls return the folder at once."""
    target = cache / f"{name}-{file_sha256(archive)[:16]}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"[data] extracting {archive} -> {target}", flush=True)
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
        raise DataError(f"{name}: data root {data_dir} does not exist (set --data-dir or TRECX_DATA)")
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
    raise DataError(f"{name}: no dataset in its native layout under {data_dir} (looked in {looked})")


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load arrays from `path` (.npz) or build and save them; writes atomically."""
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, **arrays)
    tmp.rename(path)
    return arrays


def stratified_split(labels: np.ndarray, sizes: dict[str, float], seed: int) -> dict[str, np.ndarray]:
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
    return {n: np.sort(np.concatenate(parts)) for n, parts in out.items()}
