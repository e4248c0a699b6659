"""The layout keeps its promises: imports go one way between the layers, no module imports one that
imports it back (lazy imports count), every module imports on its own, and no module grows past
400 lines. See docs/architecture.md."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_pmap"
MAX_LINES = 400

#: Each layer may import its own modules and those of lower layers only. The front doors (the
#: public API, the pytest entry point, the command's entry points) may import any layer.
LAYERS: dict[str, int] = {
    "pytest_pmap.errors": 0,
    "pytest_pmap.size": 0,
    "pytest_pmap._engine": 1,
    "pytest_pmap._measure": 2,
    "pytest_pmap._gate": 3,
    "pytest_pmap.warnings": 4,
    "pytest_pmap._plugin": 5,
    "pytest_pmap._cli": 5,
}
FRONT_DOORS = {"pytest_pmap", "pytest_pmap.plugin", "pytest_pmap.cli", "pytest_pmap.__main__"}
#: Layers that must never import pytest: the library and the command start without it.
NO_PYTEST = ("pytest_pmap._engine", "pytest_pmap._measure", "pytest_pmap._gate", "pytest_pmap._cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """Every module of ours that `name` imports, at the top or inside a function (lazily), leaving
    out imports for annotations only (under `if TYPE_CHECKING:`)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for otherwise in node.orelse:
                visit(otherwise)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in MODULES and m != name}


def layer_of(name: str) -> int | None:
    for prefix, rank in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return rank
    return None


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_module_is_in_a_layer_or_a_front_door() -> None:
    assert [n for n in MODULES if n not in FRONT_DOORS and layer_of(n) is None] == []


@pytest.mark.parametrize("name", [n for n in MODULES if n not in FRONT_DOORS])
def test_imports_go_down_the_layers_only(name: str) -> None:
    rank = layer_of(name)
    assert rank is not None
    upward = sorted(m for m in GRAPH[name] if m in FRONT_DOORS or (layer_of(m) or 0) > rank)
    assert upward == [], f"{name} imports from a higher layer: {upward}"


def test_no_import_cycle_lazy_imports_included() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(GRAPH[name]):
            if state.get(other) == 1:
                cycles.append([*path[path.index(other) :], other])
            elif other not in state:
                walk(other)
        path.pop()
        state[name] = 2

    for name in MODULES:
        if name not in state:
            walk(name)
    assert cycles == []


def test_the_cycle_check_sees_lazy_imports(tmp_path: Path) -> None:
    """The checker itself: an import inside a function counts, one under TYPE_CHECKING does not."""
    name = "pytest_pmap._engine.totals"
    text = MODULES[name].read_text()
    assert "pytest_pmap._engine.snapshot" not in GRAPH[name]
    fake = tmp_path / "totals.py"
    fake.write_text(text + "\n\ndef _late() -> None:\n    from .snapshot import Snapshot\n")
    MODULES[name], original = fake, MODULES[name]
    try:
        with_lazy = imports_of(name)
        fake.write_text(text + "\nif TYPE_CHECKING:\n    from .snapshot import Snapshot\n")
        with_annotation = imports_of(name)
    finally:
        MODULES[name] = original
    assert "pytest_pmap._engine.snapshot" in with_lazy
    assert "pytest_pmap._engine.snapshot" not in with_annotation


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_400_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines: split it by job"


def test_each_module_imports_on_its_own_and_the_low_layers_without_pytest() -> None:
    """As pytest's test_meta does: an import-order bug shows only when a module is imported first.
    Each module is imported with none of ours loaded; the layers that must not need pytest first,
    while it is not loaded."""
    names = sorted((n for n in MODULES if n != "pytest_pmap.__main__"), key=lambda n: not n.startswith(NO_PYTEST))
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('pytest_pmap')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        print(f'{name}: {type(exc).__name__}: {exc}')\n"
        f"    if name.startswith({NO_PYTEST!r}) and 'pytest' in sys.modules:\n"
        "        print(f'{name}: imports pytest')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


#: What the `pytest-pmap` command must not import: each costs it milliseconds at every start, and a
#: small process is read in about as much (docs/engine.md, "The command's start-up").
HEAVY_FOR_THE_COMMAND = ("typing", "dataclasses", "inspect", "ast", "pathlib", "tempfile", "locale", "pytest")


@pytest.mark.parametrize("args", [["-x"], ["-X"], ["-XX"], ["-d"], [], ["-q", "-p"]], ids=str)
def test_the_command_imports_nothing_heavy(args: list[str]) -> None:
    """`pytest-pmap` on a live process, started without `site` (whose .pth files may import anything):
    none of the modules that cost the command its start-up time is loaded at the end."""
    code = (
        "import sys\n"
        "from pytest_pmap.cli import main\n"
        "sys.argv = ['pytest-pmap', *sys.argv[1:]]\n"
        "status = main()\n"
        f"print(sorted(set({HEAVY_FOR_THE_COMMAND!r}) & set(sys.modules)), status, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-S", "-c", code, *args, str(os.getpid())], capture_output=True, text=True,
                          env=env, check=False, timeout=60)
    assert done.stderr == "[] 0\n"
    assert done.stdout.startswith(f"{os.getpid()}:   ")


#: What an installed plugin that nothing asks for may import: its options and settings, the table of
#: names they are described from, and the hook specifications.
UNUSED_PLUGIN_IMPORTS = [
    "pytest_pmap", "pytest_pmap._engine", "pytest_pmap._engine.metrics", "pytest_pmap._plugin",
    "pytest_pmap._plugin.hookspecs", "pytest_pmap._plugin.options", "pytest_pmap._plugin.state", "pytest_pmap.plugin",
]
#: What a session that only measures (`--pmap`, no baseline, no file, no budget) never imports.
MEASURING_NEEDS_NONE_OF = [
    "pytest_pmap._measure.budget", "pytest_pmap._measure.probe", "pytest_pmap._measure.treeprobe",
    "pytest_pmap._measure.trace", "pytest_pmap._measure.leaks", "pytest_pmap._engine.tree",
    "pytest_pmap._plugin.confirm", "pytest_pmap._plugin.fixtures", "pytest_pmap._plugin.markers",
    "pytest_pmap._gate.compare",
]
MODULES_AT_THE_END = """
import os, sys

def pytest_unconfigure(config):
    with open(os.environ["MODULES_OUT"], "w") as out:
        out.write(" ".join(sorted(name for name in sys.modules if name.split(".")[0] == "pytest_pmap")))
"""


@pytest.mark.parametrize(
    ("args", "test", "expected"),
    [([], "def test_one():\n    assert 1\n", UNUSED_PLUGIN_IMPORTS),
     (["-p", "no:pmap"], "def test_one():\n    assert 1\n", []),
     ([], "def test_one(pmap):\n    assert pmap.rss > 0\n", None),
     (["--pmap"], "def test_one():\n    assert 1\n", None)],
    ids=["unused", "blocked", "fixture", "--pmap"],
)
def test_an_unused_plugin_imports_only_its_options(
    pytester: pytest.Pytester, args: list[str], test: str, expected: list[str] | None
) -> None:
    """A pytest run with the plugin installed and nothing of it used loads only the entry point's
    options and settings; a fixture or --pmap loads the rest."""
    pytester.makeconftest(MODULES_AT_THE_END)
    pytester.makepyfile(test_one=test)
    out = pytester.path / "modules.txt"
    pytester._monkeypatch.setenv("MODULES_OUT", str(out))
    pytester._monkeypatch.setenv("PYTHONPATH", str(PACKAGE.parent))
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    loaded = out.read_text().split()
    if expected is None:
        assert "pytest_pmap._engine.acquire" in loaded and "pytest_pmap._plugin.runner" in loaded
        if args == ["--pmap"]:  # measuring alone: nothing of budgets, probes, traces, leak hunts or the gate
            assert not set(MEASURING_NEEDS_NONE_OF) & set(loaded), sorted(set(MEASURING_NEEDS_NONE_OF) & set(loaded))
    else:
        assert loaded == expected
