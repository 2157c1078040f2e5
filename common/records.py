"""Deployment records, written and read in one place: `deploy.json` names the model, its baseline and the graphs it
describes by content hash (SHA-256); the records of later commands (benchmark.json, firmware_*.json, export.json)
carry the deployment's digest, and every reader refuses, in one line, a record whose hashes no longer match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import files
from .errors import ModelFileError

DEPLOY = "deploy.json"
FIELDS = ("task", "variant", "baseline", "exits", "segments", "rhos", "threshold", "mflops", "hashes")


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(Path(path).read_bytes())


def model_hash(path: Path) -> str:
    """The SHA-256 of a model file, or "missing: <name>" where there is none (a baseline loaded otherwise)."""
    return file_sha256(path) if Path(path).exists() else f"missing: {Path(path).name}"


@dataclass(frozen=True)
class Deployment:
    """A deployment as deploy.json records it (`record`: the whole file), read through `read`."""

    folder: Path
    record: dict

    def __getitem__(self, key: str):
        return self.record[key]

    def get(self, key: str, default=None):
        return self.record.get(key, default)

    @property
    def hashes(self) -> dict:
        """{"model", "baseline_model": SHA-256 of the .keras files, "graphs": {file name: SHA-256}}."""
        return self.record["hashes"]

    @property
    def digest(self) -> str:
        """What names this deployment in later records: a hash of its int8 graphs, thresholds and model."""
        named = {"graphs": {k: v for k, v in sorted(self.hashes["graphs"].items()) if ".int8." in k},
                 "rhos": self.record["rhos"], "model": self.hashes["model"]}
        signal = self.record.get("signal") or {}
        if signal.get("name", "max_softmax") != "max_softmax":  # the thresholds mean nothing without their scores
            named["signal"] = {"name": signal["name"], "params": signal.get("params", [])}
        return sha256(json.dumps(named, sort_keys=True).encode())[:16]

    def stamp(self) -> dict:
        """The fields a later command's record carries to name this deployment."""
        return {"deployment": self.digest, "model_sha256": self.hashes["model"]}


def write(folder: Path, rec: dict, graph_files: dict[str, bytes], model: Path, baseline: str) -> Deployment:
    """deploy.json for `rec`, with the hashes of `graph_files` (file name -> content), the model's .keras file and
    the baseline (`baseline`: its hash, e.g. `model_hash` of its .keras file); returns the deployment."""
    rec = rec | {"hashes": {"model": file_sha256(model), "baseline_model": baseline,
                            "graphs": {name: sha256(g) for name, g in sorted(graph_files.items())}}}
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise ValueError(f"a deployment record needs {', '.join(missing)}")
    files.write_json(Path(folder) / DEPLOY, rec)
    return Deployment(Path(folder), rec)


def read(folder: Path, variant: str | None = None) -> Deployment:
    """The deployment in `folder`, refused in one line when deploy.json is missing, from an older deploy, for
    another variant, or when a graph file beside it is not the one it hashed."""
    path = Path(folder) / DEPLOY
    if not path.exists():
        raise ModelFileError(f"{path} not found: run python -m common deploy first")
    rec = json.loads(path.read_text())
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise ModelFileError(f"{path} is from an older deploy (no {', '.join(missing)}): run python -m common deploy "
                             f"--task {rec.get('task', 'TASK')} --variant {rec.get('variant', path.parent.name)} again")
    if variant is not None and rec["variant"] != variant:
        raise ModelFileError(f"{path} deploys {rec['variant']}, not {variant}")
    for name, want in rec["hashes"]["graphs"].items():
        if (folder / name).exists() and file_sha256(folder / name) != want:
            raise ModelFileError(f"{folder / name} is not the graph {path.name} describes (its SHA-256 differs): "
                                 f"run python -m common deploy --task {rec['task']} --variant {rec['variant']} again")
    return Deployment(Path(folder), rec)


def check_model(dep: Deployment, model: Path) -> None:
    """Refuse, in one line, a deployment of another model than the file `model` (e.g. pretrained/ moved on)."""
    if file_sha256(model) != dep.hashes["model"]:
        raise ModelFileError(f"{dep.folder / DEPLOY} deploys another {dep['variant']} than {model} (SHA-256 differs): "
                             f"run python -m common deploy --task {dep['task']} --variant {dep['variant']} again")


def read_result(path: Path, dep: Deployment) -> dict | None:
    """A later command's record of `dep` (benchmark.json, firmware_*.json; None when there is none), refused in
    one line when it names another deployment: other graphs, thresholds or model."""
    if not Path(path).exists():
        return None
    got = json.loads(Path(path).read_text())
    if got.get("deployment") != dep.digest:
        raise ModelFileError(f"{path} was measured on another deployment than {dep.folder / DEPLOY} describes (its "
                             f"graphs, thresholds or model changed): rerun the command that wrote {Path(path).name} "
                             f"for --task {dep['task']} --variant {dep['variant']}")
    return got
