"""One pip install: the wheel built from pyproject.toml carries the toolkit (its firmware sources too), installs
into a scratch virtual environment, and its API and `trecx` console script work from outside the checkout; so
does `pip install -e .`, which reads the checkout itself."""

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
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import common, common.api as api, pathlib; from common.edge import sources; "
            "print(common.__file__); print(all((sources.FIRMWARE / f).exists() for f in sources.RUNNER)); "
            "print(callable(api.attach_exit))")
    for kind, target in (("wheel", [str(wheel)]), ("editable", ["--no-build-isolation", "-e", str(src)])):
        venv, site = _venv(tmp_path / kind)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-deps", *target], check=True, capture_output=True)
        out = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=elsewhere, check=True,
                             capture_output=True, text=True).stdout
        where, runner, api_ok = out.split()
        # the wheel's files are in the venv; an editable install reads the checkout itself
        assert Path(where).is_relative_to(site if kind == "wheel" else src), (kind, where)
        assert runner == "True" and api_ok == "True"
        listing = subprocess.run([str(venv / "bin" / "trecx")], cwd=elsewhere, check=True, capture_output=True,
                                 text=True)
        assert "export_sources" in listing.stdout and "firmware" in listing.stdout


def _venv(path: Path) -> tuple[Path, Path]:
    """A scratch venv whose pinned dependencies are this environment's (installing them again would download
    1 GB); returns it and its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(subprocess.run([str(path / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path, site
