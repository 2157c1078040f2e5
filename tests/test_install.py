"""The toolkit as a researcher installs it: the wheel (and `pip install -e .`) into a scratch venv, used from a folder
of their own that has a `common/` package of its own, with nothing given by hand beyond what the docs say."""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from common import paths

PARTS = ("pyproject.toml", "README.md", "LICENSE", "common", "image_classification", "keyword_spotting",
         "visual_wake_words")

# A user's own network, through the road docs/api.md walks, from outside the checkout. Only what the docs tell a
# user to set is set: TRECX_RESULTS (where the shipped deployments are) for the command below.
USER_ROAD = """
import json, pathlib, sys
import numpy as np, keras
import common, trecx
assert common.MINE, "the user's own common/ package must stay theirs"
inputs = keras.Input((16, 16, 3))
x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="c2")(x)
x = keras.layers.Conv2D(16, 3, activation="relu", name="c3")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
net = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
rng = np.random.default_rng(0)
xs, ys = rng.uniform(0, 1, (64, 16, 16, 3)).astype("float32"), rng.integers(0, 4, 64)
model = trecx.attach_exit(net, after="c1")
import tensorflow as tf
trecx.train_exit(model, tf.data.Dataset.from_tensor_slices((xs, ys)).batch(16), epochs=1)
costs = trecx.exit_costs(model, cost="cortex-m4/cmsis_nn:estimate", x=xs[:8])
graphs = trecx.export_int8(model, xs[:16])
cal = trecx.calibrate_exit(graphs, xs, ys, max_drop=0.5)
rt = trecx.runtime(graphs, cal)
spec = trecx.export_sources(graphs, cal, pathlib.Path("fw"))
head = pathlib.Path("fw", "trecx_model.h").read_text().splitlines()[0]
assert rt.provenance.split(":")[0] in head, (rt.provenance, head)  # the sources say where the thresholds came from
print(json.dumps({"file": trecx.__file__, "exit": rt(xs[0]).exit, "costs": costs, "provenance": rt.provenance,
                  "sources": sorted(p.name for p in pathlib.Path("fw").iterdir())}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the sources (building writes build/ and *.egg-info beside them) and the wheel built from it."""
    tmp_path = tmp_path_factory.mktemp("build")
    src = tmp_path / "src"
    src.mkdir()
    for part in PARTS:
        if (paths.CHECKOUT / part).is_dir():
            shutil.copytree(paths.CHECKOUT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(paths.CHECKOUT / part, src / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("trecx-*.whl")
    return src, wheel


def _venv(path: Path) -> tuple[Path, Path]:
    """A scratch venv whose dependencies are this environment's (installing them again would download 1 GB);
    returns its python and its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def _user_folder(tmp_path: Path) -> Path:
    """A researcher's folder with a package of their own named `common`."""
    folder = tmp_path / "elsewhere"
    (folder / "common").mkdir(parents=True)
    (folder / "common" / "__init__.py").write_text("MINE = True\n")
    return folder


def test_the_wheels_metadata_names_no_generic_package_and_no_exact_pin(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
        meta = email.message_from_bytes(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))))
        assert any(n.startswith("trecx/edge/tables/") and n.endswith(".csv") for n in z.namelist())
        assert any(n.startswith("trecx/edge/firmware/trecx_runner") for n in z.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"trecx"}, tops
    assert "Apache" in (meta.get("License") or "") + (meta.get("License-Expression") or "") + " ".join(
        meta.get_all("Classifier") or [])
    required = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    core = {r.name.lower(): r for r in required if r.marker is None}
    assert not [str(r) for r in required if any(s.operator in ("==", "===") for s in r.specifier)]
    # a newer compatible Keras or NumPy than the tested pins is kept, never downgraded; the tested pins fit
    assert core["keras"].specifier.contains("3.99.0") and core["numpy"].specifier.contains("2.99.0")
    assert core["keras"].specifier.contains("3.15.1") and core["numpy"].specifier.contains("2.4.6")
    assert not {"pytest", "ruff", "ray", "tensorflow-datasets", "tensorflow-cpu"} & set(core)  # extras, not core
    extras = {r.marker and str(r.marker) for r in required}
    assert {'extra == "studies"', 'extra == "dev"', 'extra == "cpu"'} <= extras


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_and_an_editable_install_work_from_a_users_own_folder(built, tmp_path: Path):
    src, wheel = built
    folder = _user_folder(tmp_path)
    (folder / "road.py").write_text(USER_ROAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRECX_")} | {
        "TRECX_RESULTS": str(paths.CHECKOUT / "results"), "PYTHONPATH": ""}
    for kind, target in (("wheel", [str(wheel)]), ("editable", ["--no-build-isolation", "-e", str(src)])):
        python, site = _venv(tmp_path / kind)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", *target],
                       check=True, capture_output=True)
        before = {p.name for p in site.iterdir()}
        run = subprocess.run([str(python), "road.py"], cwd=folder, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        got = json.loads(run.stdout.strip().splitlines()[-1])
        # the wheel's files are in the venv; an editable install reads the (copied) checkout itself
        assert Path(got["file"]).is_relative_to(site if kind == "wheel" else src / "common"), (kind, got["file"])
        assert got["exit"] in ("early_exit", "final") and {"trecx_model.h", "trecx_runner.cc"} <= set(got["sources"])
        assert "estimated" in got["costs"]["early_exit"]["cost_source"]  # the packaged table, not results/
        assert got["provenance"].startswith(("Thresholds certified by Learn-then-Test", "Nothing certified"))
        assert {p.name for p in site.iterdir()} == before  # nothing written into site-packages (no .cache there)
        tops = {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth")) and p.name[0] != "_"}
        assert tops <= {"trecx"}, tops
        script = subprocess.run([str(python.parent / "trecx")], cwd=folder, env=env, capture_output=True, text=True)
        assert script.returncode == 0 and "usage: trecx <command>" in script.stdout
        assert "export_sources" in script.stdout
        out = folder / f"fw_{kind}"
        cmd = subprocess.run([str(python.parent / "trecx"), "export_sources", "--task", "keyword_spotting",
                              "--variant", "trecx", "--out-dir", str(out)], cwd=folder, env=env, capture_output=True,
                             text=True)
        assert cmd.returncode == 0, cmd.stderr[-2000:]
        assert (out / "trecx_model.cc").exists()


LOAD_ALL = ("import sys, pathlib, keras, {lib}\n"
            "from {lib}.models import contract\n"
            "files = sorted(pathlib.Path(sys.argv[1]).rglob('*.keras'))\n"
            "for f in files: contract.check(keras.models.load_model(f, compile=False))\n"
            "print(len(files))")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_pretrained_file_loads_both_ways(built, tmp_path: Path):
    """After `import common` in the checkout and after `import trecx` from the installed wheel (two interpreters
    side by side), every file in pretrained/ loads with plain Keras, the seed replicas in its sub-folders
    included, and meets the output contract."""
    _, wheel = built
    python, _ = _venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    shipped = paths.CHECKOUT / "pretrained"
    runs = [subprocess.Popen([exe, "-c", LOAD_ALL.format(lib=lib), str(shipped)], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for exe, lib, cwd in ((sys.executable, "common", paths.CHECKOUT),
                                  (str(python), "trecx", _user_folder(tmp_path)))]
    for run in runs:
        out, err = run.communicate()
        assert run.returncode == 0, err[-3000:]
        top_level = len(list(shipped.glob("*/*.keras")))
        assert int(out.split()[-1]) == len(list(shipped.rglob("*.keras"))) > top_level > 0
