"""One pip install: the wheel built from pyproject.toml carries the toolkit (its firmware sources too), installs
into a scratch virtual environment, and its API and `trecx` console script work from outside the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from common import paths

PARTS = ("pyproject.toml", "README.md", "requirements.txt", "common", "image_classification", "keyword_spotting",
         "visual_wake_words")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_installs_into_a_scratch_venv_and_imports_from_anywhere(tmp_path: Path):
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    src.mkdir()
    for part in PARTS:
        copy = shutil.copytree if (paths.REPO / part).is_dir() else shutil.copy
        copy(paths.REPO / part, src / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                               if (paths.REPO / part).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("trecx-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # the pinned dependencies are those of this environment (installing them again would download 1 GB)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import common, common.api as api, pathlib; from common.edge import sources; "
            "print(common.__file__); print(all((sources.FIRMWARE / f).exists() for f in sources.RUNNER)); "
            "print(callable(api.attach_exit))")
    out = subprocess.run([str(py), "-c", code], cwd=elsewhere, check=True, capture_output=True, text=True).stdout
    where, runner, api_ok = out.split()
    assert Path(where).is_relative_to(site) and runner == "True" and api_ok == "True"
    listing = subprocess.run([str(venv / "bin" / "trecx")], cwd=elsewhere, check=True, capture_output=True, text=True)
    assert "export_sources" in listing.stdout and "firmware" in listing.stdout
