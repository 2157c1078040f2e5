"""Shared fixtures: small datasets in each native layout, made by the tests themselves."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"


def needs_shared(*parts: str):
    """Skip (with the reason printed by -ra) when ../shared or the named file is absent."""
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is absent (real data lives in ../shared)")


def write_images(folder: Path, n: int, size: int, seed: int, fmt: str = "JPEG") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:04d}.{'jpg' if fmt == 'JPEG' else 'png'}", fmt, quality=95)


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """<tmp>/data/cifar10/train/<class>/*.jpg with 10 images per class."""
    from common.data.images import CIFAR10_CLASSES

    root = tmp_path / "data" / "cifar10"
    for c, cls in enumerate(CIFAR10_CLASSES):
        write_images(root / "train" / cls, 10, 32, seed=c)
    return tmp_path / "data"


def tar_folder(src: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return archive


def write_wav(path: Path, seconds: float = 1.0, sr: int = 16000, channels: int = 1, seed: int = 0) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = (0.3 * rng.standard_normal((int(seconds * sr), channels))).clip(-1, 1).astype(np.float32)
    sf.write(path, data, sr, subtype="PCM_16")


@pytest.fixture
def speech_root(tmp_path: Path) -> Path:
    """Speech Commands layout: 3 keywords + 2 unknown words, lists, noise, silence_clips."""
    root = tmp_path / "data" / "speech_commands" / "speech_commands_v0.02"
    files = []
    for w, word in enumerate(["yes", "no", "up", "cat", "tree"]):
        for i in range(6):
            name = f"{word}/spk{i}_nohash_0.wav"
            write_wav(root / name, seed=10 * w + i)
            files.append(name)
    (root / "validation_list.txt").write_text("\n".join(f for f in files if "spk4" in f) + "\n")
    (root / "testing_list.txt").write_text("\n".join(f for f in files if "spk5" in f) + "\n")
    for i in range(2):
        write_wav(root / "_background_noise_" / f"noise{i}.wav", seconds=3, seed=100 + i)
    for i in range(10):
        write_wav(root.parent / "silence_clips" / f"sil{i}.wav", seed=200 + i)
    return tmp_path / "data"


@pytest.fixture
def vww_root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "visual_wake_words"
    write_images(root / "person", 10, 96, seed=1)
    write_images(root / "non_person", 10, 96, seed=2)
    return tmp_path / "data"


@pytest.fixture
def offline_empty(tmp_path: Path, monkeypatch) -> Path:
    """An empty data root, with every tensorflow-datasets download failing as it does offline."""
    import tensorflow_datasets as tfds

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setattr(tfds, "builder", offline)
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def tradeoff(**fields) -> dict:
    """A summary.json trade-off row: every field None but those given."""
    keys = ("drop_points", "rho", "val_accuracy", "val_mflops", "test_accuracy", "test_mflops",
            "test_flops_reduction_pct", "test_drop_points")
    return {k: None for k in keys} | {"drop_points": 1} | fields


def summary_dict(tradeoffs: list[dict] = (), baseline_mflops: float | None = 10.0, accuracy: float = 0.8) -> dict:
    """A whole summary.json of a two-exit model (common.evaluation.summary reads only whole ones)."""
    cost = {"mflops": 1.0, "params": 1, "mflops_alone": 1.0, "params_alone": 1}
    return {"exits": ["early_exit", "final"], "params": 2, "exit_costs": {"early_exit": cost, "final": cost},
            "standalone": {e: {"val": accuracy, "test": accuracy} for e in ("early_exit", "final")},
            "tradeoffs": [tradeoff(**t) for t in tradeoffs],
            "baseline": None if baseline_mflops is None else {"val_accuracy": 0.8, "test_accuracy": 0.8,
                                                              "mflops": baseline_mflops}}


def fake_deployment(folder: Path, rhos=(0.9,), threshold: dict | None = None, variant: str = "trecx", **fields):
    """A deploy.json written through `common.records` (as deploy writes it) for one tiny graph file, the model a
    small file beside it: what the readers of later records check against."""
    from common import records

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(b"a model")
    graph = {f"{variant}_head.int8.tflite": b"a graph"}
    for name, content in graph.items():
        (folder / name).write_bytes(content)
    rec = {"task": "keyword_spotting", "variant": variant, "baseline": "baseline", "exits": ["early_exit", "final"],
           "segments": ["head", "tail"], "rhos": None if rhos is None else list(rhos),
           "threshold": threshold or {"rhos": rhos}, "mflops": {}, **fields}
    return records.write(folder, rec, graph, folder / "model.keras", "baseline hash")
