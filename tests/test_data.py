"""Data loaders on small fixtures: layouts, archives, caching, splits, and every bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tar_folder, write_images, write_wav

from common.data import audio
from common.data.images import CIFAR10_CLASSES, load_cifar10, load_vww
from common.data.sources import stratified_split
from common.errors import DataError


def test_cifar_folder_carves_stratified_val_and_test(cifar_root: Path, tmp_path: Path):
    s = load_cifar10(cifar_root, tmp_path / "cache", seed=3, val_fraction=0.2, test_fraction=0.2, download=False)
    assert {k: len(v) for k, v in s.y.items()} == {"val": 20, "test": 20, "train": 60}
    for k in ("val", "test"):
        assert np.bincount(s.y[k], minlength=10).tolist() == [2] * 10
    assert s.x["train"].shape[1:] == (32, 32, 3) and s.x["train"].dtype == np.uint8
    assert not set(s.names["test"]) & set(s.names["train"])
    assert "carved" in s.info["test_split"]
    again = load_cifar10(cifar_root, tmp_path / "cache", seed=3, val_fraction=0.2, test_fraction=0.2, download=False)
    assert again.names == s.names  # the same seed gives the same split


def test_a_test_decodes_only_its_subsets_and_gets_the_same_split(cifar_root: Path, tmp_path: Path):
    part = load_cifar10(cifar_root, tmp_path / "part", seed=3, val_fraction=0.2, test_fraction=0.2, download=False,
                        decode=("val", "test"))
    full = load_cifar10(cifar_root, tmp_path / "full", seed=3, val_fraction=0.2, test_fraction=0.2, download=False)
    assert set(part.x) == {"val", "test"} and part.names == full.names and part.info == full.info
    for k in ("val", "test"):
        assert np.array_equal(part.x[k], full.x[k]) and np.array_equal(part.y[k], full.y[k])
    assert len(list((tmp_path / "part").glob("cifar10-*.npz"))) == 1  # its own cache, never taken for the full one


def test_cifar_archive_is_extracted_once_and_cached(cifar_root: Path, tmp_path: Path):
    archive = tar_folder(cifar_root / "cifar10", tmp_path / "arch" / "cifar10" / "cifar10_train.tar.gz")
    cache = tmp_path / "cache"
    s = load_cifar10(tmp_path / "arch", cache, download=False)
    assert s.info["source"] == "cifar10/cifar10_train.tar.gz"  # relative to the data root, not a machine path
    assert archive.exists()
    assert len(list(cache.glob("cifar10-*.npz"))) == 1
    shutil.rmtree(next(p for p in cache.iterdir() if p.is_dir()))  # the decoded cache alone must suffice
    s2 = load_cifar10(tmp_path / "arch", cache, download=False)
    assert np.array_equal(s2.x["train"], s.x["train"])


def test_cifar_uses_a_present_test_split(cifar_root: Path, tmp_path: Path):
    for c, cls in enumerate(CIFAR10_CLASSES):
        write_images(cifar_root / "cifar10" / "test" / cls, 3, 32, seed=1000 + c)
    s = load_cifar10(cifar_root, tmp_path / "cache", download=False)
    assert len(s.y["test"]) == 30 and s.info["test_split"] == "official"
    assert len(s.y["train"]) + len(s.y["val"]) == 100


def test_cifar_test_overlapping_train_is_an_error(cifar_root: Path, tmp_path: Path):
    shutil.copytree(cifar_root / "cifar10" / "train", cifar_root / "cifar10" / "test")
    with pytest.raises(DataError, match="also in train"):
        load_cifar10(cifar_root, tmp_path / "cache", download=False)


def test_missing_root_names_the_path(tmp_path: Path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_cifar10(tmp_path / "nowhere", tmp_path / "cache", download=False)


def test_no_local_copy_and_failed_download(tmp_path: Path, offline_empty: Path):
    with pytest.raises(DataError, match=re.escape("download of 'cifar10' failed too (ConnectionError: no network")):
        load_cifar10(offline_empty, tmp_path / "cache", download=True)


def test_speech_commands_without_local_copy_or_network(tmp_path: Path, offline_empty: Path):
    with pytest.raises(DataError, match="download of 'speech_commands' failed too"):
        audio.load_speech_commands(offline_empty, tmp_path / "cache")
    with pytest.raises(DataError, match="no dataset in its native layout"):
        audio.load_speech_commands(offline_empty, tmp_path / "cache", download=False)


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_bad_jpeg_names_the_file(cifar_root: Path, tmp_path: Path, damage: str):
    bad = cifar_root / "cifar10" / "train" / "cat" / "0003.jpg"
    data = bad.read_bytes()
    bad.write_bytes(b"not a jpeg at all" if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape("0003.jpg")):
        load_cifar10(cifar_root, tmp_path / "cache", download=False)


def test_empty_class_folder_is_an_error(cifar_root: Path, tmp_path: Path):
    for p in (cifar_root / "cifar10" / "train" / "dog").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="dog has no images"):
        load_cifar10(cifar_root, tmp_path / "cache", download=False)


def test_unknown_class_folder_is_an_error(cifar_root: Path, tmp_path: Path):
    write_images(cifar_root / "cifar10" / "train" / "dragon", 2, 32, seed=9)
    with pytest.raises(DataError, match="dragon"):
        load_cifar10(cifar_root, tmp_path / "cache", download=False)


def test_non_image_files_are_counted_not_hidden(cifar_root: Path, tmp_path: Path, caplog):
    (cifar_root / "cifar10" / "train" / "cat" / "notes.txt").write_text("hello")
    load_cifar10(cifar_root, tmp_path / "cache", download=False)
    assert "skipped 1 non-image file" in caplog.text


def test_vww_split_is_stratified_and_recorded(vww_root: Path, tmp_path: Path):
    s = load_vww(vww_root, tmp_path / "cache", seed=1, val_fraction=0.2, test_fraction=0.2)
    assert {k: np.bincount(v).tolist() for k, v in s.y.items()} == {"val": [2, 2], "test": [2, 2], "train": [6, 6]}
    assert s.info["counts"]["test"] == 4 and len(s.names["test"]) == 4
    assert s.info["source"] == "visual_wake_words" and len(s.info["checksum"]) == 64  # relative to the data root
    assert all(n.split("/")[0] in ("person", "non_person") for n in s.names["train"])


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        stratified_split(np.zeros(10), {"a": 0.8, "b": 0.5, "c": 0.0}, 0)


def test_speech_commands_layout(speech_root: Path, tmp_path: Path):
    s = audio.load_speech_commands(speech_root, tmp_path / "cache", seed=0, silence_fractions=(0.2, 0.2))
    assert s.info["counts"] == {"train": 26, "val": 7, "test": 7}
    assert all(n.startswith(("silence_clips/", "cat/", "tree/", "yes/", "no/", "up/")) for n in s.names["train"])
    unknown = [y for n, y in zip(s.names["train"], s.y["train"], strict=True) if n.startswith(("cat/", "tree/"))]
    assert set(unknown) == {audio.UNKNOWN}
    assert s.wav["train"].shape[1:] == (16000,) and s.wav["train"].dtype == np.int16
    assert len(s.background) == 2 and all(len(b) == 48000 for b in s.background)


def test_speech_commands_resamples_and_downmixes(speech_root: Path, tmp_path: Path, caplog):
    root = speech_root / "speech_commands" / "speech_commands_v0.02"
    write_wav(root / "yes" / "spk0_nohash_0.wav", sr=8000, seed=1)
    write_wav(root / "no" / "spk0_nohash_0.wav", channels=2, seed=2)
    caplog.set_level("INFO")
    s = audio.load_speech_commands(speech_root, tmp_path / "cache")
    assert (s.info["resampled"], s.info["downmixed"]) == (1, 1)
    assert "1 file(s) resampled" in caplog.text
    i = s.names["train"].index("yes/spk0_nohash_0.wav")
    assert np.abs(s.wav["train"][i]).max() > 0  # resampled to a full second


def test_speech_commands_corrupt_wav_names_the_file(speech_root: Path, tmp_path: Path):
    bad = speech_root / "speech_commands" / "speech_commands_v0.02" / "up" / "spk2_nohash_0.wav"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(DataError, match=re.escape("spk2_nohash_0.wav")):
        audio.load_speech_commands(speech_root, tmp_path / "cache")


def test_speech_commands_overlapping_lists_are_an_error(speech_root: Path, tmp_path: Path):
    root = speech_root / "speech_commands" / "speech_commands_v0.02"
    with open(root / "testing_list.txt", "a") as f:
        f.write((root / "validation_list.txt").read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match=re.escape("both validation_list.txt and testing_list.txt")):
        audio.load_speech_commands(speech_root, tmp_path / "cache")


def test_speech_commands_list_naming_a_missing_file(speech_root: Path, tmp_path: Path):
    root = speech_root / "speech_commands" / "speech_commands_v0.02"
    with open(root / "testing_list.txt", "a") as f:
        f.write("yes/ghost_nohash_0.wav\n")
    with pytest.raises(DataError, match=re.escape("ghost_nohash_0.wav")):
        audio.load_speech_commands(speech_root, tmp_path / "cache")


def test_speech_training_pipeline_draws_augmentation_per_epoch(speech_root: Path, tmp_path: Path):
    s = audio.load_speech_commands(speech_root, tmp_path / "cache")
    ds = audio.train_dataset(s, batch=64, seed=0, silence_fraction=0.5)
    (x1, y1), (x2, _) = [next(iter(ds)) for _ in range(2)]
    n, extra = len(s.y["train"]), len(s.y["train"]) // 2
    assert x1.shape == (n + extra, 49, 10, 1) and int((y1.numpy() == audio.SILENCE).sum()) >= extra
    assert not np.allclose(np.sort(x1.numpy().ravel()), np.sort(x2.numpy().ravel()))  # new draws each epoch


def test_mfcc_shape_and_peak_normalisation():
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal((3, 16000)) * 0.1).astype(np.float32)
    a = audio.mfcc(audio.peak_normalise(wav)).numpy()
    b = audio.mfcc(audio.peak_normalise(wav * 7)).numpy()
    assert a.shape == (3, 49, 10, 1) and np.allclose(a, b, atol=1e-3)
