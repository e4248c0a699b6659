"""A test's budget from `[tool.pytest_pmap]` and its `pmap` markers, level by level.

The levels, farthest first: pyproject's defaults, its node-id globs (in file order), then markers
on the package, the module, each base class, the class, the test function, and the parameter
(`pytest.param(..., marks=...)`). They combine key by key, the closest level winning for each
key. Two markers on one level that set one key to different values are an error of the test:
which of them was meant cannot be told, and pytest would silently pick the inner one.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from .._engine.metrics import MARKER_SWITCHES as SWITCHES
from .._measure.budget import Budget, parse_limits
from ..errors import BudgetSyntaxError
from ..size import Size
from .state import SESSION

__all__ = ["budget_of", "leaks_of", "tolerance_of", "trace_of", "tree_of"]


def budget_of(item: pytest.Item) -> Budget:
    """The budget of `item`; a bad marker raises `BudgetSyntaxError` naming the level and the key."""
    config_budgets = item.config.stash[SESSION].config_budgets
    budget = Budget() if config_budgets is None else config_budgets.for_test(item.nodeid)
    if next(item.iter_markers("pmap"), None) is None:  # most tests: no marker at any level
        return budget
    for where, label, marks in reversed(_levels(item)):  # farthest first, so the closest wins each key
        budget = budget.merged(_limits(marks, where), label)
    return budget


def _levels(item: pytest.Item) -> list[tuple[str, str, list[Any]]]:
    """(where, label, marks) for every level that has `pmap` markers, the closest first. `where`
    names the level in errors; `label` in a broken limit's line (`limit from marker`)."""
    levels: list[tuple[str, str, list[Any]]] = []
    for node in reversed(item.listchain()):
        marks = [m for m in node.own_markers if m.name == "pmap"]
        if not marks:
            continue
        if node is item:
            params = list(getattr(getattr(item, "callspec", None), "marks", ()))
            mine = [m for m in marks if any(m is p for p in params)]
            if mine:
                where = f"marker on parameter {item.nodeid}"
                levels.append((where, where, mine))
            rest = [m for m in marks if not any(m is p for p in params)]
            if rest:
                levels.append((f"marker on {item.nodeid}", "marker", rest))
        elif isinstance(node, pytest.Class):
            levels += _class_levels(node, marks)
        else:
            kind = "module" if isinstance(node, pytest.Module) else type(node).__name__.lower()
            where = f"marker on {kind} {node.nodeid or '.'}"
            levels.append((where, where, marks))
    return levels


def _class_levels(node: pytest.Class, marks: list[Any]) -> list[tuple[str, str, list[Any]]]:
    """A class's markers, one level per class of its MRO that set some (pytest gives a class
    the markers of its bases too): the class itself first, then its bases, closest first."""
    by_class: dict[type, list[Any]] = {}
    for mark in marks:
        owner = node.obj
        for cls in node.obj.__mro__:
            stored = cls.__dict__.get("pytestmark", [])
            stored = stored if isinstance(stored, list) else [stored]
            if any(mark is getattr(s, "mark", s) for s in stored):
                owner = cls
                break
        by_class.setdefault(owner, []).append(mark)
    levels = []
    for cls in node.obj.__mro__:
        if cls in by_class:
            where = (f"marker on class {node.nodeid}" if cls is node.obj
                     else f"marker on class {cls.__qualname__} (a base of {node.nodeid})")
            levels.append((where, where, by_class[cls]))
    return levels


def _limits(marks: list[Any], where: str) -> dict[str, Size]:
    """The limits of the markers of one level; each key may be given there once (or the same twice)."""
    limits: dict[str, Size] = {}
    given: dict[str, Any] = {}
    for mark in marks:
        if mark.args:
            raise BudgetSyntaxError(f"{where}: pmap() takes keyword limits only, got {mark.args!r}")
        if not mark.kwargs:
            raise BudgetSyntaxError(
                f"{where}: @pytest.mark.pmap sets no limit, so nothing would be checked; "
                "give limits such as @pytest.mark.pmap(uss_growth='8MiB'), or use --pmap to measure every test"
            )
        limits_given = {key: value for key, value in mark.kwargs.items() if key not in _NOT_LIMITS}
        for key, size in parse_limits(limits_given, where).items():
            if key in limits and limits[key] != size:
                raise BudgetSyntaxError(
                    f"{where}: two pmap markers set {key} ({given[key]!r} and {mark.kwargs[key]!r}); "
                    "give each key once per level (a marker on the test wins over one on its class or module)"
                )
            limits[key], given[key] = size, mark.kwargs[key]
    return limits


_NOT_LIMITS = frozenset({"tolerance", *SWITCHES})
"""Marker keys that are not limits: `tolerance_of()`, `tree_of()`, `trace_of()` read them."""


def tolerance_of(item: pytest.Item) -> str:
    """The closest marker's `tolerance=`: the gate's tolerance for this test alone (`"5%,2MiB"`), or
    `"off"` when the gate is not to judge it; "" when no marker sets one."""
    for mark in item.iter_markers("pmap"):
        if "tolerance" in mark.kwargs:
            text = mark.kwargs["tolerance"]
            where = f"marker on {item.nodeid}: tolerance={text!r}"
            if not isinstance(text, str):
                raise BudgetSyntaxError(f"{where}: give a string such as '5%,2MiB', or 'off' to leave the test ungated")
            if text.strip().lower() == "off":
                return "off"
            from .._gate.compare import Tolerance

            Tolerance.parse(text, where)
            return text.strip()
    return ""


def tree_of(item: pytest.Item) -> bool:
    """The closest marker's `tree=True`: its budget covers the test process and all its descendants."""
    return bool(_switch(item, "tree", "True (the test process and all its descendants) or False (the test process alone)"))


def trace_of(item: pytest.Item, default: bool) -> bool:
    """The closest marker's `trace=`: whether tracemalloc runs during the test's call; `default`
    (the session's `--pmap-trace`) when no marker says."""
    value = _switch(item, "trace", "True (run tracemalloc during the call) or False")
    return default if value is None else value


def leaks_of(item: pytest.Item, on: bool, calls: int) -> int:
    """The closest marker's `leaks=`: how many measured calls the leak hunt makes of this test (0:
    none). `leaks=True` is the session's number of `calls`; with no marker, `calls` when the
    session hunts leaks (`on`), else 0."""
    for mark in item.iter_markers("pmap"):
        if "leaks" in mark.kwargs:
            value = mark.kwargs["leaks"]
            if value is True:
                return calls
            if value is False:
                return 0
            if isinstance(value, int) and value >= 2:
                return value
            raise BudgetSyntaxError(f"marker on {item.nodeid}: leaks={value!r}: give True, False, or a number of "
                                    "measured calls of 2 or more")
    return calls if on else 0


def _switch(item: pytest.Item, key: str, choices: str) -> Optional[bool]:
    """The closest marker's value of an on/off key; None when no marker sets it."""
    for mark in item.iter_markers("pmap"):
        if key in mark.kwargs:
            value = mark.kwargs[key]
            if not isinstance(value, bool):
                raise BudgetSyntaxError(f"marker on {item.nodeid}: {key}={value!r}: give {choices}")
            return value
    return None
