"""Speech Commands v0.02 for 12-class keyword spotting, and the MLPerf Tiny MFCC front end.

Waveforms are cached as int16 (the dataset's own PCM) keyed by the archive checksum. The front end
and the augmentation are TensorFlow ops, so they run inside tf.data, per sample and per epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from .. import paths
from ..errors import DataError, DataNotFound
from .sources import cached_arrays, locate, stratified_split, tfds_download

log = logging.getLogger("trecx.data")

KWS_CLASSES = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
SILENCE, UNKNOWN = KWS_CLASSES.index("_silence_"), KWS_CLASSES.index("_unknown_")
SAMPLE_RATE = 16000
CLIP = SAMPLE_RATE  # one-second clips


@dataclass
class AudioSplits:
    """int16 waveforms (N, 16000) and labels per subset, background recordings, and a record."""

    wav: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    names: dict[str, list[str]]
    background: list[np.ndarray]
    info: dict = field(default_factory=dict)


def check_wav_length(path: Path) -> None:
    """Raise a DataError when a RIFF/WAVE file holds fewer data bytes than its header declares (a
    file cut short with its header intact, which decoders silently read as a shorter clip)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE: left to the decoder
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                have = path.stat().st_size - f.tell()
                if have < size:
                    raise DataError(f"truncated WAV {path}: its header declares {size} data bytes, "
                                    f"the file holds {have}")
                return
            f.seek(size + (size & 1), 1)  # chunks are padded to an even size


def read_wav(path: Path, counts: dict[str, int]) -> np.ndarray:
    """Read one clip as float32 mono at 16 kHz: down-mix and resample (with librosa) when needed,
    counting each in `counts`. Corrupt or truncated files raise a DataError naming the file."""
    import soundfile as sf

    check_wav_length(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:
        raise DataError(f"corrupt or unreadable WAV {path}: {e}") from e
    if data.shape[0] == 0:
        raise DataError(f"WAV {path} has no samples")
    if data.shape[1] > 1:
        counts["downmixed"] += 1
    wav = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        import librosa

        counts["resampled"] += 1
        wav = librosa.resample(wav, orig_sr=sr, target_sr=SAMPLE_RATE)
    return wav


def _fit(wav: np.ndarray) -> np.ndarray:
    """Zero-pad or trim to one second, as int16."""
    out = np.zeros(CLIP, np.float32)
    out[: min(CLIP, len(wav))] = wav[:CLIP]
    return np.round(np.clip(out, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def _is_root(p: Path) -> bool:
    return (p / "validation_list.txt").is_file() and (p / "testing_list.txt").is_file()


def _read_list(path: Path, root: Path) -> list[str]:
    names = [n.strip() for n in path.read_text().splitlines() if n.strip()]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"{path} lists {len(missing)} file(s) that do not exist, e.g. {missing[:3]}")
    return names


def _decode_all(root: Path) -> dict[str, np.ndarray]:
    counts = {"resampled": 0, "downmixed": 0, "skipped": 0}
    words = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if not words:
        raise DataError(f"no word folders in {root}")
    names, labels = [], []
    for w in words:
        entries = sorted(w.iterdir())
        wavs = [p for p in entries if p.suffix.lower() == ".wav"]
        counts["skipped"] += len(entries) - len(wavs)
        if not wavs:
            raise DataError(f"word folder {w} has no .wav files")
        label = KWS_CLASSES.index(w.name) if w.name in KWS_CLASSES[:SILENCE] else UNKNOWN
        names += [f"{w.name}/{p.name}" for p in wavs]
        labels += [label] * len(wavs)
    silence_dir = next((d for d in (root / "silence_clips", root.parent / "silence_clips") if d.is_dir()), None)
    silence = sorted(silence_dir.glob("*.wav")) if silence_dir else []
    names += [f"silence_clips/{p.name}" for p in silence]
    labels += [SILENCE] * len(silence)
    files = [root / n for n in names[: len(names) - len(silence)]] + silence
    log.info(f"decoding {len(files)} Speech Commands clips from {root} (once; cached afterwards)")
    wav = np.stack([_fit(read_wav(p, counts)) for p in tqdm(files, desc="decoding clips", unit="clip",
                                                             mininterval=2, disable=len(files) < 2000)])
    noise_dir = root / "_background_noise_"
    noise = [read_wav(p, counts) for p in sorted(noise_dir.glob("*.wav"))] if noise_dir.is_dir() else []
    if not noise:
        raise DataError(f"no background noise recordings in {noise_dir}")
    lengths = np.array([len(n) for n in noise])
    return {"wav": wav, "y": np.array(labels, np.int64), "names": np.array(names),
            "noise": (np.concatenate(noise) * 32767).astype(np.int16), "noise_lengths": lengths,
            **{k: np.array(v) for k, v in counts.items()}}


def load_speech_commands(data_dir: Path | str | None = None, cache_dir: Path | None = None,
                         seed: int = 0, silence_fractions: tuple[float, float] = (0.1, 0.1),
                         download: bool = True) -> AudioSplits:
    """Speech Commands v0.02 in its own layout (folder or .tar.gz): word folders, `_background_noise_`,
    `validation_list.txt` / `testing_list.txt`, and an optional `silence_clips/` folder.

    Validation and test come from the two lists; every other word clip is training. Silence clips
    (when present) are split seeded by `silence_fractions` (validation, test); training silence is
    also drawn from background-noise slices by the augmentation. With no local copy, the
    tensorflow-datasets `speech_commands` splits are used (when `download` and online).
    """
    data_dir = Path(data_dir or paths.data_dir())
    cache = Path(cache_dir or paths.cache_dir())
    try:
        root, key, origin = locate(data_dir, "speech_commands", _is_root, cache)
    except DataNotFound as e:  # a corrupt local copy is reported as such, never replaced by a download
        if not download:
            raise
        return _speech_from_tfds(cache, str(e))
    arr = cached_arrays(cache / f"speech_commands-{key[:16]}.npz", lambda: _decode_all(root))
    val, test = (set(_read_list(root / f, root)) for f in ("validation_list.txt", "testing_list.txt"))
    if overlap := sorted(val & test):
        raise DataError(f"{root}: {len(overlap)} clip(s) are in both validation_list.txt and testing_list.txt, "
                        f"e.g. {overlap[:3]}")
    names = arr["names"]
    subset = np.array(["val" if n in val else "test" if n in test else "train" for n in names], dtype=object)
    is_sil = np.char.startswith(names.astype(str), "silence_clips/")
    sil_idx = np.flatnonzero(is_sil)
    if len(sil_idx):
        v, t = silence_fractions
        parts = stratified_split(np.zeros(len(sil_idx)), {"val": v, "test": t, "train": 1 - v - t}, seed,
                                 allow_empty=True)
        for k, i in parts.items():
            subset[sil_idx[i]] = k
    out = AudioSplits({}, {}, {}, np.split(arr["noise"], np.cumsum(arr["noise_lengths"])[:-1]))
    for k in ("train", "val", "test"):
        m = subset == k
        out.wav[k], out.y[k], out.names[k] = arr["wav"][m], arr["y"][m], [str(n) for n in names[m]]
    counts = {k: len(v) for k, v in out.y.items()}
    per_class = {k: np.bincount(v, minlength=len(KWS_CLASSES)).tolist() for k, v in out.y.items()}
    out.info = {"dataset": "speech_commands_v0.02", "source": paths.portable(origin, data_dir), "checksum": key,
                "seed": seed, "counts": counts, "per_class": per_class, "classes": list(KWS_CLASSES),
                **{k: int(arr[k]) for k in ("resampled", "downmixed", "skipped")}}
    for k in ("resampled", "downmixed", "skipped"):
        if out.info[k]:
            log.info(f"speech_commands: {out.info[k]} file(s) {k}")
    return out


def _speech_from_tfds(cache: Path, no_local: str) -> AudioSplits:
    """tensorflow-datasets `speech_commands` (same 12 classes, same order), downloaded into the cache;
    its training `_silence_` clips, one-second background-noise slices, serve as the background recordings."""
    with tfds_download("speech_commands", cache, no_local) as (tfds, folder):
        builder = tfds.builder("speech_commands", data_dir=str(folder))
        builder.download_and_prepare()
    out = AudioSplits({}, {}, {}, [])
    for k, split in (("train", "train"), ("val", "validation"), ("test", "test")):
        examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
        out.wav[k] = np.stack([_fit(e["audio"].astype(np.float32) / 32768) for e in examples])
        out.y[k] = np.array([int(e["label"]) for e in examples], np.int64)
        out.names[k] = [f"tfds-{split}/{i}" for i in range(len(examples))]
    out.background = list(out.wav["train"][out.y["train"] == SILENCE])
    out.info = {"dataset": "speech_commands_v0.02", "source": "tensorflow-datasets:speech_commands",
                "counts": {k: len(v) for k, v in out.y.items()}, "classes": list(KWS_CLASSES)}
    return out


# ---- MLPerf Tiny KWS front end -------------------------------------------------------------------

def to_float(wav_int16: tf.Tensor) -> tf.Tensor:
    return tf.cast(wav_int16, tf.float32) / 32768.0


def peak_normalise(wav: tf.Tensor) -> tf.Tensor:
    peak = tf.reduce_max(tf.abs(wav), axis=-1, keepdims=True)
    return wav / tf.maximum(peak, 1e-9)


def mfcc(wav: tf.Tensor) -> tf.Tensor:
    """(..., 16000) float waveform -> (..., 49, 10, 1) MFCC, as the MLPerf Tiny KWS reference:
    30 ms Hann window, 20 ms stride, 512-point FFT magnitude, 40 mel bins 20-4000 Hz,
    log(mel + 1e-6), first 10 MFCCs."""
    spec = tf.abs(tf.signal.stft(wav, frame_length=480, frame_step=320, fft_length=512,
                                 window_fn=tf.signal.hann_window))
    mel_w = tf.signal.linear_to_mel_weight_matrix(40, 257, SAMPLE_RATE, 20.0, 4000.0)
    log_mel = tf.math.log(tf.tensordot(spec, mel_w, 1) + 1e-6)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :10, tf.newaxis]


def features(wav_int16: np.ndarray, batch: int = 512) -> np.ndarray:
    """Evaluation features: peak-normalised MFCC of every clip, no augmentation."""
    out = [mfcc(peak_normalise(to_float(wav_int16[i:i + batch]))).numpy() for i in range(0, len(wav_int16), batch)]
    return np.concatenate(out) if out else np.zeros((0, 49, 10, 1), np.float32)


def augmenter(background: list[np.ndarray], seed: int, shift_ms: float = 100.0, noise_prob: float = 0.8,
              noise_volume: float = 0.1):
    """A tf.data map fn (wav_int16, label, is_placeholder) -> (mfcc, label) drawing per sample and
    per epoch: a time shift of up to `shift_ms`, and a background-noise slice at a random volume.
    Placeholders (all-zero `_silence_` clips) always get noise at a volume up to 1."""
    noise = tf.constant(np.concatenate(background).astype(np.float32) / 32768.0)
    lengths = np.array([len(b) for b in background])
    starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]), tf.int64)
    spans = tf.constant(lengths - CLIP, tf.int64)
    shift = int(SAMPLE_RATE * shift_ms / 1000)
    rng = tf.random.Generator.from_seed(seed)

    def fn(wav, label, placeholder):
        x = peak_normalise(to_float(wav))
        s = rng.uniform([], -shift, shift + 1, tf.int64)
        x = tf.roll(tf.pad(x, [[shift, shift]]), -s, 0)[shift:shift + CLIP]  # shift, filling with zeros
        i = rng.uniform([], 0, len(lengths), tf.int64)
        off = starts[i] + rng.uniform([], 0, spans[i] + 1, tf.int64)
        slice_ = noise[off:off + CLIP]
        u = rng.uniform([2])
        volume = tf.where(placeholder, u[1], tf.where(u[0] < noise_prob, u[1] * noise_volume, 0.0))
        return mfcc(tf.clip_by_value(x + volume * slice_, -1.0, 1.0)), label

    return fn


def train_dataset(s: AudioSplits, batch: int, seed: int, silence_fraction: float = 0.1) -> tf.data.Dataset:
    """Shuffled, augmented training batches; `silence_fraction` of extra all-zero `_silence_`
    placeholders become background-noise slices each epoch."""
    n_extra = int(silence_fraction * len(s.y["train"]))
    wav = np.concatenate([s.wav["train"], np.zeros((n_extra, CLIP), np.int16)])
    y = np.concatenate([s.y["train"], np.full(n_extra, SILENCE)])
    ph = np.concatenate([np.zeros(len(s.y["train"]), bool), np.ones(n_extra, bool)])
    ds = tf.data.Dataset.from_tensor_slices((wav, y, ph)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    return ds.map(augmenter(s.background, seed)).batch(batch).prefetch(2)
