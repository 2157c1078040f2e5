"""Image datasets: CIFAR-10 and Visual Wake Words, read from their native folder layouts.

Arrays are uint8 HxWx3 (models take 0..255 and scale inside). Decoded arrays are cached as .npz,
keyed by the source archive's checksum, so the second load takes seconds.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .. import paths
from ..errors import DataError, DataNotFound
from .sources import cached_arrays, locate, stratified_split, tfds_download

log = logging.getLogger("trecx.data")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VWW_CLASSES = ("non_person", "person")  # label 0, 1 as in the MLPerf model
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Splits:
    """Arrays per subset plus a JSON-able record of where they came from."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    names: dict[str, list[str]]
    info: dict = field(default_factory=dict)


def _decode(path: Path, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"corrupt or truncated image {path}: {e}") from e
    if arr.shape[:2] != size:
        raise DataError(f"image {path} is {arr.shape[1]}x{arr.shape[0]}, expected {size[1]}x{size[0]}")
    return arr


def read_image_folder(root: Path, classes: tuple[str, ...], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Read root/<class>/<image> into arrays. Unknown class folders and empty classes are errors;
    files that are not images are counted and reported, never dropped silently."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name not in classes]
    if unknown:
        raise DataError(f"unknown class folder(s) {unknown} in {root}; expected {list(classes)}")
    files, labels, skipped = [], [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            raise DataError(f"class folder {folder} is missing")
        entries = sorted(folder.iterdir())
        imgs = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped += [str(p) for p in entries if p not in imgs]
        if not imgs:
            raise DataError(f"class folder {folder} has no images")
        files += imgs
        labels += [label] * len(imgs)
    if skipped:
        log.warning(f"skipped {len(skipped)} non-image file(s) under {root}, e.g. {skipped[:3]}")
    with ThreadPoolExecutor(4) as pool:
        images = pool.map(lambda p: _decode(p, size), files)
        x = np.stack(list(tqdm(images, total=len(files), desc=f"decoding {root.name}", unit="img",
                               mininterval=2, disable=len(files) < 2000)))
    names = np.array([f"{p.parent.name}/{p.name}" for p in files])
    return {"x": x, "y": np.array(labels, np.int64), "names": names, "skipped": np.array(len(skipped))}


def _check_disjoint(a: np.ndarray, b: np.ndarray, names_a: np.ndarray, names_b: np.ndarray, what: str) -> None:
    """Raise when an image of `b` has the same pixels as one of `a` (a test split that overlaps train)."""
    ha = {hashlib.blake2b(img.tobytes(), digest_size=12).digest(): n for img, n in zip(a, names_a, strict=True)}
    dup = [(ha[h], n) for img, n in zip(b, names_b, strict=True)
           if (h := hashlib.blake2b(img.tobytes(), digest_size=12).digest()) in ha]
    if dup:
        raise DataError(f"{what}: {len(dup)} test image(s) also in train, e.g. {dup[:3]}")


def _split_record(name: str, source: Path | str, key: str, seed: int, s: Splits, data_dir: Path | None = None) -> dict:
    """Where a split came from: the source relative to the data root (with its checksum), never a machine path."""
    counts = {k: len(v) for k, v in s.y.items()}
    return {"dataset": name, "source": paths.portable(source, data_dir), "checksum": key, "seed": seed,
            "counts": counts}


def load_cifar10(data_dir: Path | str | None = None, cache_dir: Path | None = None, seed: int = 0,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, download: bool = True) -> Splits:
    """CIFAR-10 as uint8 arrays, from `<root>/cifar10/{train,test}/<class>/*.jpg` (folder or .tar.gz).

    Without a test split on disk, a seeded stratified validation and test split are carved out of
    train; with one, it is the test split and only validation is carved out of train.
    """
    data_dir = Path(data_dir or paths.data_dir())
    cache = Path(cache_dir or paths.cache_dir())
    try:
        root, key, origin = locate(data_dir, "cifar10", lambda p: (p / "train").is_dir(), cache)
    except DataNotFound as e:  # a corrupt local copy is reported as such, never replaced by a download
        if not download:
            raise
        return _cifar10_from_tfds(cache, seed, val_fraction, str(e))

    def build() -> dict[str, np.ndarray]:
        log.info(f"decoding CIFAR-10 from {root} (once; cached afterwards)")
        out = {f"train_{k}": v for k, v in read_image_folder(root / "train", CIFAR10_CLASSES, (32, 32)).items()}
        if (root / "test").is_dir():
            test = read_image_folder(root / "test", CIFAR10_CLASSES, (32, 32))
            _check_disjoint(out["train_x"], test["x"], out["train_names"], test["names"], f"cifar10 at {root}")
            out.update({f"test_{k}": v for k, v in test.items()})
        return out

    arr = cached_arrays(cache / f"cifar10-{key[:16]}.npz", build)
    has_test = "test_x" in arr
    fractions = {"val": val_fraction} if has_test else {"val": val_fraction, "test": test_fraction}
    idx = stratified_split(arr["train_y"], {**fractions, "train": 1.0 - sum(fractions.values())}, seed)
    x = {k: arr["train_x"][i] for k, i in idx.items()}
    y = {k: arr["train_y"][i] for k, i in idx.items()}
    names = {k: [f"train/{n}" for n in arr["train_names"][i]] for k, i in idx.items()}
    if has_test:
        x["test"], y["test"] = arr["test_x"], arr["test_y"]
        names["test"] = [f"test/{n}" for n in arr["test_names"]]
    s = Splits(x, y, names)
    s.info = _split_record("cifar10", origin, key, seed, s, data_dir)
    s.info["test_split"] = "official" if has_test else f"carved from train ({test_fraction:.0%}, stratified)"
    return s


def _cifar10_from_tfds(cache: Path, seed: int, val_fraction: float, no_local: str) -> Splits:
    """CIFAR-10 downloaded with tensorflow-datasets into the cache (users online with no local copy)."""
    with tfds_download("cifar10", cache, no_local) as (tfds, folder):
        loaded = tfds.load("cifar10", split=["train", "test"], as_supervised=True, data_dir=str(folder))
        (xtr, ytr), (xte, yte) = ([np.concatenate(part) for part in zip(*tfds.as_numpy(ds.batch(4096)), strict=True)]
                                  for ds in loaded)
    idx = stratified_split(ytr, {"val": val_fraction, "train": 1.0 - val_fraction}, seed)
    x = {k: xtr[i] for k, i in idx.items()} | {"test": xte}
    y = {k: ytr[i].astype(np.int64) for k, i in idx.items()} | {"test": yte.astype(np.int64)}
    names = {k: [f"tfds-train/{j}" for j in i] for k, i in idx.items()}
    names["test"] = [f"tfds-test/{j}" for j in range(len(yte))]
    s = Splits(x, y, names)
    s.info = _split_record("cifar10", "tensorflow-datasets:cifar10", "tfds", seed, s) | {"test_split": "official"}
    return s


def load_vww(data_dir: Path | str | None = None, cache_dir: Path | None = None, seed: int = 0,
             val_fraction: float = 0.2, test_fraction: float = 0.2) -> Splits:
    """Visual Wake Words 96x96 images from `person/` and `non_person/` folders (the shared subset or
    the MLPerf Tiny `vw_coco2014_96` layout), split seeded and stratified into train/val/test."""
    data_dir = Path(data_dir or paths.data_dir())
    cache = Path(cache_dir or paths.cache_dir())
    root, key, origin = locate(data_dir, "visual_wake_words",
                       lambda p: (p / "person").is_dir() and (p / "non_person").is_dir(), cache)

    def build() -> dict[str, np.ndarray]:
        log.info(f"decoding VWW images from {root} (once; cached afterwards)")
        return read_image_folder(root, VWW_CLASSES, (96, 96))

    arr = cached_arrays(cache / f"vww-{key[:16]}.npz", build)
    fractions = {"val": val_fraction, "test": test_fraction}
    idx = stratified_split(arr["y"], {**fractions, "train": 1.0 - val_fraction - test_fraction}, seed)
    s = Splits({k: arr["x"][i] for k, i in idx.items()}, {k: arr["y"][i] for k, i in idx.items()},
               {k: [str(n) for n in arr["names"][i]] for k, i in idx.items()})
    s.info = _split_record("visual_wake_words", origin, key, seed, s, data_dir)
    return s
