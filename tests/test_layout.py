"""The tree reads as the pipeline: commands apart from the library, every import (top-level or inside a function)
pointing down the stage order docs/architecture.md states, no import circles, a façade with no logic, and every
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


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in (REPO / "common").rglob("*.py")}


def project_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, inside a function) of every import of a `common` module in `path`, relative ones resolved;
    `from a import b` counts as `a.b` where that is a module."""
    me = _module(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module.split(".")[0] == "common":
                out += [(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module, node.lineno,
                         id(node) in local) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in local) for a in node.names if a.name.split(".")[0] == "common"]
    return out


def stage_order() -> list[list[str]]:
    """The stages, lowest first, as docs/architecture.md states them on its `Stage order:` line."""
    line = next(x for x in (REPO / "docs" / "architecture.md").read_text().splitlines() if x.startswith("Stage order:"))
    return [group.split() for group in line.removeprefix("Stage order:").strip().strip("`").split("<")]


def stage(module: str, order: list[list[str]]) -> int:
    """A module's place in the order: its first name under `common` (the package itself: -1)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    (i,) = [i for i, names in enumerate(order) if parts[1] in names] or [None]
    assert i is not None, f"{module}: its stage '{parts[1]}' is not in docs/architecture.md's stage order"
    return i


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(REPO)))
def test_every_import_points_down_the_stage_order(path: Path):
    order, me = stage_order(), _module(path)
    if me == "common":
        return  # the package: its lazy API names load `api` on first use
    up = [f"line {line}: {m}" for m, line, _ in project_imports(path) if stage(m, order) > stage(me, order)]
    assert not up, f"{me} imports up the stage order: {up}"


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import circle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> list[str] | None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return [*trail[trail.index(t):], t]
            if t not in state and (found := visit(t, [*trail, t])):
                return found
        state[m] = 2
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m, [m]))), None)


def test_no_module_imports_itself_back():
    """No import circles between modules (a circle inside one stage passes the order test)."""
    graph = {m: {t for t, _, _ in project_imports(p) if t not in ("common", m)} for m, p in MODULES.items()}
    assert circle(graph) is None, f"import circle: {' -> '.join(circle(graph))}"


def test_the_checkers_see_an_import_up_and_a_circle():
    order = stage_order()
    assert stage("common.edge.board", order) > stage("common.evaluation.sweep", order) > stage("common.paths", order)
    assert stage("common.commands.deploy", order) > stage("common.api", order) > stage("common.studies.tune", order)
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"] and circle({"a": {"b"}}) is None


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(REPO)))
def test_function_local_imports_of_the_library_say_why(path: Path):
    """TensorFlow loads with the package, so a module gains nothing by importing another inside a function: such an
    import stays only with its reason on its line (the package's lazy API is the one)."""
    lines = path.read_text().splitlines()
    silent = [line for _, line, local in project_imports(path) if local and "#" not in lines[line - 1]]
    assert not silent, f"{path.name}: function-local imports without a reason on lines {silent}"


# What a library function may import inside itself, and why: the extras a core install lacks, TensorFlow (never
# loaded at start-up when Keras runs on JAX) and the converters and runtimes on top of it, and what is slow to load
# for a command that may not need it. Anything else is imported at the top of its module, or says why on its line
# ("# lazy: <why>").
LAZY = {"ray": "the studies extra", "psutil": "the studies extra", "librosa": "the tasks extra",
        "soundfile": "the tasks extra", "tensorflow_datasets": "the tasks extra", "h5py": "Keras 2 files only",
        "tensorflow": "not loaded under Keras on JAX", "ai_edge_litert": "the int8 runtime, after TensorFlow",
        "tflite_micro": "TFLM's interpreter, after TensorFlow", "scipy": "slow to load", "matplotlib": "slow to load"}


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(REPO)))
def test_function_local_imports_of_other_packages_are_the_lazy_ones(path: Path):
    text = path.read_text()
    tree, lines = ast.parse(text), text.splitlines()
    local = [(n.lineno, (n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0])
             for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)
             if isinstance(n, ast.Import) or (isinstance(n, ast.ImportFrom) and not n.level)]
    eager = [x for x in local if x[1] not in LAZY and "# lazy:" not in lines[x[0] - 1]]
    assert not eager, f"{path.name}: import these at the top of the module: {eager}"


def test_the_api_only_delegates_and_nothing_imports_it():
    api = REPO / "common" / "api.py"
    assert len(api.read_text().splitlines()) <= 250
    users = [m for m, p in MODULES.items() if m not in ("common", "common.api")
             and any(t == "common.api" for t, _, _ in project_imports(p))]
    assert not users, f"imports of the façade from inside the library: {users}"
    for node in ast.parse(api.read_text()).body:  # every function is one return of a library call
        if isinstance(node, ast.FunctionDef):
            body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
            assert len(body) == 1 and isinstance(body[0], ast.Return), f"api.{node.name} does more than delegate"


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(REPO)))
def test_no_library_module_is_over_300_lines(path: Path):
    assert len(path.read_text().splitlines()) <= 300, path


@pytest.mark.parametrize("path", [p for t in TASKS for p in sorted((REPO / t).rglob("*.py"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_task_folders_import_the_library_by_its_installed_name(path: Path):
    """`trecx.X` (in the checkout, an alias of `common.X`; installed, the package itself) and their own modules
    relatively: the same files work in the checkout and inside the installed package."""
    bad = sorted(m for m in imports(path) if m.split(".")[0] in ("common", *TASKS))
    assert not bad, f"{path}: {bad}"


def test_the_package_offers_every_name_of_the_api():
    import common
    from common import api

    assert sorted(common.API) == sorted(api.__all__)
    assert all(getattr(common, n) is getattr(api, n) for n in api.__all__)


def test_trecx_in_the_checkout_is_common_itself():
    import common
    import common.models.layers
    import trecx
    import trecx.models.layers

    assert trecx is common and trecx.models.layers is common.models.layers
    assert callable(trecx.attach_exit) and trecx.attach_exit.__module__ == "common.models.attach"


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
