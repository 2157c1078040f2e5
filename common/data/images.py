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


def list_image_folder(root: Path, classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """The images of root/<class>/ and their labels, in a fixed order. Unknown class folders and empty classes
    are errors; files that are not images are counted and reported, never dropped silently."""
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
    return files, np.array(labels, np.int64)


def decode_images(files: list[Path], size: tuple[int, int], what: str) -> np.ndarray:
    """The images as one uint8 array (a progress bar on long reads)."""
    with ThreadPoolExecutor(4) as pool:
        images = pool.map(lambda p: _decode(p, size), files)
        return np.stack(list(tqdm(images, total=len(files), desc=f"decoding {what}", unit="img", mininterval=2,
                                  disable=len(files) < 2000)))


def _names(files: list[Path]) -> np.ndarray:
    return np.array([f"{p.parent.name}/{p.name}" for p in files])


def read_image_folder(root: Path, classes: tuple[str, ...], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Read root/<class>/<image> into arrays (`list_image_folder`, then every image decoded)."""
    files, labels = list_image_folder(root, classes)
    return {"x": decode_images(files, size, root.name), "y": labels, "names": _names(files)}


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
                 val_fraction: float = 0.1, test_fraction: float = 0.1, download: bool = True,
                 decode: tuple[str, ...] = ("train", "val", "test")) -> Splits:
    """CIFAR-10 as uint8 arrays, from `<root>/cifar10/{train,test}/<class>/*.jpg` (folder or .tar.gz).

    Without a test split on disk, a seeded stratified validation and test split are carved out of
    train; with one, it is the test split and only validation is carved out of train. `decode`: the subsets
    whose images are read (labels and names come for all); while no full decoded cache exists, a test of
    val and test reads 10,000 images instead of 50,000.
    """
    data_dir = Path(data_dir or paths.data_dir())
    cache = Path(cache_dir or paths.cache_dir())
    try:
        root, key, origin = locate(data_dir, "cifar10", lambda p: (p / "train").is_dir(), cache)
    except DataNotFound as e:  # a corrupt local copy is reported as such, never replaced by a download
        if not download:
            raise
        return _cifar10_from_tfds(cache, seed, val_fraction, str(e))

    fractions = {"val": val_fraction} if (root / "test").is_dir() else {"val": val_fraction, "test": test_fraction}
    full = cache / f"cifar10-{key[:16]}.npz"
    if set(decode) < {"train", "val", "test"} and not full.exists() and not (root / "test").is_dir():
        x, y, names = _cifar10_subsets(root, cache / f"cifar10-{key[:16]}-{seed}-{val_fraction:g}-{test_fraction:g}"
                                       f"-{'-'.join(sorted(decode))}.npz", fractions, seed, decode)
    else:
        x, y, names = _cifar10_all(root, full, fractions, seed)
    s = Splits(x, y, names)
    s.info = _split_record("cifar10", origin, key, seed, s, data_dir)
    s.info["test_split"] = ("official" if "test" not in fractions
                            else f"carved from train ({test_fraction:.0%}, stratified)")
    return s


def _cifar10_all(root: Path, cache: Path, fractions: dict[str, float], seed: int) -> tuple[dict, dict, dict]:
    """Every image decoded (cached in `cache`), split by `fractions` (+ train: the rest) and `seed`."""
    def build() -> dict[str, np.ndarray]:
        log.info(f"decoding CIFAR-10 from {root} (once; cached afterwards)")
        out = {f"train_{k}": v for k, v in read_image_folder(root / "train", CIFAR10_CLASSES, (32, 32)).items()}
        if (root / "test").is_dir():
            test = read_image_folder(root / "test", CIFAR10_CLASSES, (32, 32))
            _check_disjoint(out["train_x"], test["x"], out["train_names"], test["names"], f"cifar10 at {root}")
            out.update({f"test_{k}": v for k, v in test.items()})
        return out

    arr = cached_arrays(cache, build)
    idx = stratified_split(arr["train_y"], {**fractions, "train": 1.0 - sum(fractions.values())}, seed)
    x = {k: arr["train_x"][i] for k, i in idx.items()}
    y = {k: arr["train_y"][i] for k, i in idx.items()}
    names = {k: [f"train/{n}" for n in arr["train_names"][i]] for k, i in idx.items()}
    if "test_x" in arr:
        x["test"], y["test"] = arr["test_x"], arr["test_y"]
        names["test"] = [f"test/{n}" for n in arr["test_names"]]
    return x, y, names


def _cifar10_subsets(root: Path, cache: Path, fractions: dict[str, float], seed: int,
                     decode: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """The same split as `_cifar10_all` (carved from train), only the `decode` subsets' images read (cached)."""
    files, labels = list_image_folder(root / "train", CIFAR10_CLASSES)
    idx = stratified_split(labels, {**fractions, "train": 1.0 - sum(fractions.values())}, seed)
    arr = cached_arrays(cache, lambda: {k: decode_images([files[i] for i in idx[k]], (32, 32), f"cifar10 {k}")
                                        for k in decode})
    names = _names(files)
    return ({k: arr[k] for k in decode}, {k: labels[i] for k, i in idx.items()},
            {k: [f"train/{n}" for n in names[i]] for k, i in idx.items()})


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
