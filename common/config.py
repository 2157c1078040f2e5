"""Configs as code: a dataclass per task, named presets (e.g. "smoke"), and a command line that
overrides any field (`--epochs 3`). The resolved config is saved beside every output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import typing
from pathlib import Path


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{v}'")


def _field_type(hint) -> typing.Callable[[str], typing.Any]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return _parse_bool if base is bool else base


def parse(cls: type, presets: dict[str, typing.Any], argv: list[str] | None = None, description: str = ""):
    """Build `cls` from `--config PRESET` plus per-field overrides on the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="default", choices=sorted(presets), help="named preset to start from")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_field_type(hints[f.name]),
                            default=None, help=f.metadata.get("help", ""))
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
    return dataclasses.replace(presets[args.config], **overrides)


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "ai-edge-litert", "librosa", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def save_run_info(out_dir: Path, config, extra: dict | None = None) -> None:
    """Write config.json (the resolved config) and versions.json beside a run's outputs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    (out_dir / "config.json").write_text(json.dumps(cfg | (extra or {}), indent=1, default=str))
    (out_dir / "versions.json").write_text(json.dumps(versions(), indent=1))
