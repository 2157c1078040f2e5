"""Bad input of every kind (options, data, model files, run folders, queue files) through the programs'
own top-level handler: each case must end in exactly one line `error: ...` naming the culprit, exit
status 2, and no change under pretrained/ or results/. Tiny data is made by each test."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from conftest import tar_folder, write_wav

from common import cli, paths

IC = ["--config", "smoke"]


def _snapshot() -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for d in ("pretrained", "results")
            for p in (paths.CHECKOUT / d).rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch):
    """Runs and caches go to the test's folder; pretrained/ and results/ must come out untouched."""
    monkeypatch.setenv("TRECX_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TRECX_CACHE", str(tmp_path / "cache"))
    before = _snapshot()
    yield
    assert _snapshot() == before


def fails(main, argv: list[str], capsys, *culprits) -> str:
    """Run `main` as the command line would; return its one error line after checking it."""
    with pytest.raises(SystemExit) as exit_:
        cli.run(main, [str(a) for a in argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    for c in culprits:
        assert str(c) in errors[0], (c, errors[0])
    return errors[0]


def ic_train(argv):
    from image_classification.train import main

    return main(argv)


def kws_train(argv):
    from keyword_spotting.train import main

    return main(argv)


def ic_test(argv):
    from image_classification.test import main

    return main(argv)


# ---- options: refused before any data is read ------------------------------------------------------

@pytest.mark.parametrize(("argv", "culprit"), [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-3"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--variant", "nope"], "--variant"),
    (["--strategy", "cloud"], "--strategy"),
    (["--lr-schedule", "wavy"], "--lr-schedule"),
    (["--optimizer", "rmsprop"], "--optimizer"),
    (["--head-epochs", "5", "--epochs", "3"], "--head-epochs"),
    (["--label-smoothing", "1.5"], "--label-smoothing"),
    (["--flip", "maybe"], "--flip"),
    (["--epochz", "3"], "--epochz"),
    (["--config", "nope"], "--config"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_option(argv, culprit, capsys, tmp_path):
    fails(ic_train, [*argv, "--data-dir", tmp_path / "never-read"], capsys, culprit)


# ---- data ----------------------------------------------------------------------------------------

def test_missing_data_root_offline(tmp_path, capsys, offline_empty):
    missing = tmp_path / "nowhere"
    fails(ic_train, [*IC, "--data-dir", missing], capsys, missing, "download of 'cifar10' failed too")
    assert not list((tmp_path / "cache").glob("tfds-tmp-*"))  # no temporary folder left behind


def test_empty_data_root_offline(capsys, offline_empty):
    fails(ic_train, [*IC, "--data-dir", offline_empty], capsys, offline_empty, "no dataset in its native layout")


def test_corrupt_archive_is_reported_not_downloaded(tmp_path, capsys, offline_empty):
    archive = offline_empty / "cifar10.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    line = fails(ic_train, [*IC, "--data-dir", offline_empty], capsys, archive, "cannot extract archive")
    assert "download" not in line


def test_truncated_jpeg(cifar_root, capsys):
    bad = cifar_root / "cifar10" / "train" / "dog" / "0002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    fails(ic_train, [*IC, "--data-dir", cifar_root], capsys, bad)


def test_unknown_class_folder(cifar_root, capsys):
    (cifar_root / "cifar10" / "train" / "unicorn").mkdir()
    fails(ic_train, [*IC, "--data-dir", cifar_root], capsys, "unicorn")


def test_empty_class_folder(cifar_root, capsys):
    folder = cifar_root / "cifar10" / "train" / "frog"
    for p in folder.iterdir():
        p.unlink()
    fails(ic_train, [*IC, "--data-dir", cifar_root], capsys, folder)


def test_empty_validation_split(cifar_root, capsys):
    fails(ic_train, [*IC, "--data-dir", cifar_root, "--val-fraction", "0.01"], capsys, "val split is empty",
          "--val-fraction")


def test_wav_cut_short_with_its_header_intact(speech_root, capsys):
    bad = speech_root / "speech_commands" / "speech_commands_v0.02" / "yes" / "spk1_nohash_0.wav"
    bad.write_bytes(bad.read_bytes()[:9000])
    fails(kws_train, ["--config", "smoke", "--data-dir", speech_root], capsys, bad, "truncated WAV")


def test_corrupt_wav(speech_root, capsys):
    bad = speech_root / "speech_commands" / "speech_commands_v0.02" / "no" / "spk2_nohash_0.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    fails(kws_train, ["--config", "smoke", "--data-dir", speech_root], capsys, bad)


def test_list_naming_a_missing_clip(speech_root, capsys):
    listing = speech_root / "speech_commands" / "speech_commands_v0.02" / "testing_list.txt"
    listing.write_text(listing.read_text() + "yes/ghost_nohash_0.wav\n")
    fails(kws_train, ["--config", "smoke", "--data-dir", speech_root], capsys, listing, "ghost_nohash_0.wav")


# ---- model files ---------------------------------------------------------------------------------

def test_models_dir_missing(tmp_path, capsys):
    fails(ic_test, ["--models-dir", tmp_path / "nope", "--out-dir", tmp_path / "out"], capsys, tmp_path / "nope")


def test_models_dir_without_baseline(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    fails(ic_test, ["--models-dir", tmp_path / "models", "--out-dir", tmp_path / "out"], capsys, "baseline.keras")


@pytest.fixture(scope="module")
def saved_baseline(tmp_path_factory) -> Path:
    from common.models import registry

    path = tmp_path_factory.mktemp("saved") / "baseline.keras"
    registry.get("image_classification", "baseline").builder().save(path)
    return path


def test_truncated_keras_file(tmp_path, capsys, saved_baseline):
    bad = tmp_path / "models" / "baseline.keras"
    bad.parent.mkdir()
    bad.write_bytes(saved_baseline.read_bytes()[:5000])
    fails(ic_test, ["--models-dir", bad.parent, "--out-dir", tmp_path / "out"], capsys, bad, "truncated")


def test_keras_archive_holding_something_else(tmp_path, capsys):
    bad = tmp_path / "models" / "baseline.keras"
    bad.parent.mkdir()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("notes.txt", "not a model")
    fails(ic_test, ["--models-dir", bad.parent, "--out-dir", tmp_path / "out"], capsys, bad, "cannot load")


def test_model_outside_the_output_contract(tmp_path, capsys):
    import keras

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, {"logits": keras.layers.Dense(10)(keras.layers.Flatten()(inputs))})
    bad = tmp_path / "models" / "baseline.keras"
    bad.parent.mkdir()
    model.save(bad)
    fails(ic_test, ["--models-dir", bad.parent, "--out-dir", tmp_path / "out"], capsys, bad, "'final'")


def test_init_from_missing(cifar_root, tmp_path, capsys):
    fails(ic_train, [*IC, "--data-dir", cifar_root, "--init-from", tmp_path / "none.keras"], capsys,
          "--init-from", tmp_path / "none.keras")


def test_deploy_trade_off_out_of_range(capsys):
    from common.commands.deploy import main

    fails(main, ["--task", "keyword_spotting", "--drop-points", "9"], capsys, "--drop-points")


def test_a_command_that_needs_a_task_says_so(capsys):
    from common.commands.deploy import main

    fails(main, ["--drop-points", "1"], capsys, "--task")


def test_deploy_unknown_task(capsys):
    from common.commands.deploy import main

    fails(main, ["--task", "speech"], capsys, "--task", "speech")


def test_deploy_of_a_model_without_an_early_exit(tmp_path, capsys):
    import keras

    from common.commands.deploy import main

    inputs = keras.Input((32, 32, 3))
    plain = keras.Model(inputs, {"final": keras.layers.Dense(10, activation="softmax", name="final")(
        keras.layers.GlobalAveragePooling2D()(inputs))})
    for name in ("plain", "baseline"):
        plain.save(tmp_path / f"{name}.keras")
    fails(main, ["--task", "image_classification", "--variant", "plain", "--models-dir", tmp_path], capsys,
          "plain of image_classification has no early exit", "--variant trecx")
    fails(main, ["--task", "image_classification", "--rule", "guess"], capsys, "--rule must be one of")


def test_truncated_tflite(tmp_path, capsys):
    import keras

    from common import records
    from common.commands.benchmark import main
    from common.edge.deployment import graph_file
    from common.edge.export import to_tflite

    inputs = keras.Input((4,))
    good = to_tflite(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
    out = tmp_path / "deploy"
    out.mkdir()
    graphs = {graph_file("trecx", f"{part}_{kind}"): good for part in ("head", "tail", "baseline")
              for kind in ("float", "int8")}
    bad = out / graph_file("trecx", "tail_int8")
    graphs[bad.name] = good[: len(good) // 2]  # hashed as written: a broken graph deploy.json itself describes
    for name, content in graphs.items():
        (out / name).write_bytes(content)
    (out / "model.keras").write_bytes(b"m")
    records.write(out, {"task": "keyword_spotting", "variant": "trecx", "baseline": "b", "exits": [],
                        "segments": ["head", "tail"], "rhos": None, "threshold": {}, "mflops": {}}, graphs,
                  out / "model.keras", "b")
    fails(main, ["--task", "keyword_spotting", "--out-dir", out], capsys, bad)


# ---- run folders and queues ----------------------------------------------------------------------

def test_resuming_with_other_options(cifar_root, tmp_path, capsys):
    from common.config import record
    from image_classification.config import PRESETS

    run = tmp_path / "runs" / "image_classification" / "smoke" / "baseline"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(record(PRESETS["smoke"]) | {"lr": 0.5, "preset": "smoke"}))
    fails(ic_train, [*IC, "--variant", "baseline", "--data-dir", cifar_root], capsys, run, "lr: 0.5 -> 0.1",
          "--restart")


def test_speech_without_lists_offline(tmp_path, capsys, offline_empty):
    root = offline_empty / "speech_commands"
    write_wav(root / "yes" / "a_nohash_0.wav")
    tar_folder(root, offline_empty / "other.tar.gz")  # an archive with no Speech Commands layout inside
    fails(kws_train, ["--config", "smoke", "--data-dir", offline_empty], capsys, offline_empty,
          "download of 'speech_commands' failed too")


def test_another_tasks_model_in_models_dir(tmp_path, capsys):
    import keras

    from image_classification.test import main

    inputs = keras.Input((49, 10, 1))
    model = keras.Model(inputs, {"final": keras.layers.Dense(12, activation="softmax", name="final")(
        keras.layers.Flatten()(inputs))})
    model.save(tmp_path / "baseline.keras")
    line = fails(main, ["--models-dir", tmp_path], capsys, tmp_path / "baseline.keras", "(49, 10, 1)", "(32, 32, 3)")
    assert "another task's model" in line
