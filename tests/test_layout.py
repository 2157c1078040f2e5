"""The tree reads as the pipeline: commands apart from the library, dependencies pointing one way, and every
command a typed config, a `run(cfg)` and a thin `main(argv)`."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import typing
from pathlib import Path

import pytest

from common.commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]
TASKS = ("image_classification", "keyword_spotting", "visual_wake_words")
TASK_COMMANDS = ("train", "test", "recipe_search", "seeds")  # the programs of a task folder


def imports(path: Path) -> set[str]:
    """Every module `path` imports, `from a import b` counted as both `a` and `a.b`."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return out


def is_command(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["common", "commands"] or (parts[0] in TASKS and len(parts) > 1 and parts[1] in TASK_COMMANDS)


LIBRARY = sorted([p for p in (REPO / "common").rglob("*.py") if "commands" not in p.parts and p.name != "__main__.py"]
                 + [p for t in TASKS for p in (REPO / t).rglob("*.py") if p.stem not in TASK_COMMANDS])


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_the_library_never_imports_a_command(path: Path):
    assert not sorted(m for m in imports(path) if is_command(m)), path


def test_the_checker_sees_a_command_import(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("from common.commands import deploy\nimport keyword_spotting.train\n")
    assert sorted(m for m in imports(bad) if is_command(m)) == ["common.commands", "common.commands.deploy",
                                                                "keyword_spotting.train"]


@pytest.mark.parametrize("path", sorted((REPO / "common" / "models").glob("*.py")), ids=lambda p: p.name)
def test_model_code_never_imports_cli_configuration(path: Path):
    assert not imports(path) & {"common.config", "common.cli", "common.commands"}, path


def test_every_command_is_listed_once_with_a_config_a_run_and_a_main():
    modules = {p.stem for p in (REPO / "common" / "commands").glob("*.py") if p.stem != "__init__"}
    assert modules == set(COMMANDS)
    for name in COMMANDS:
        module = importlib.import_module(f"common.commands.{name}")
        cfg = next(iter(inspect.signature(module.run).parameters))
        assert dataclasses.is_dataclass(typing.get_type_hints(module.run)[cfg]), name
        assert callable(module.main), name


def _main_calls(path: Path) -> list[str]:
    """`x.main(...)` calls of another module in `path`: a command composed through argv."""
    return [ast.unparse(n.func) for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "main"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_commands_compose_through_run_never_argv(name: str):
    assert _main_calls(REPO / "common" / "commands" / f"{name}.py") == []


def test_python_m_common_lists_every_command(capsys):
    from common.__main__ import main

    main([])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_help_is_grouped_by_concern(capsys):
    from common.commands import train
    from common.config import field_groups
    from keyword_spotting.config import Config

    groups = field_groups(Config)
    assert groups["lr"] == groups["epochs"] == "recipe" and groups["teacher"] == "distillation"
    assert groups["silence_fraction"] == "options"  # the task's own fields
    with pytest.raises(SystemExit):
        train.parse_task("keyword_spotting", ["--help"])
    out = capsys.readouterr().out
    heads = ["what to train, and where:", "recipe:", "exits and joint training:", "distillation:",
             "seeds, determinism and speed:"]
    assert all(h in out for h in heads) and "--task" not in out  # the task is fixed by its train.py
    assert [out.index(h) for h in heads] == sorted(out.index(h) for h in heads)


def test_search_presets_are_accepted_but_not_listed():
    from common.commands import train

    cfg = train.parse_task("image_classification", ["--config", "search_sgd"])
    assert cfg.preset == "search_sgd" and cfg.epochs == 15 and cfg.task == "image_classification"
    from image_classification.config import PRESETS

    assert not any(p.startswith("search_") for p in PRESETS)
