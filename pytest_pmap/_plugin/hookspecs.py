"""The hooks pytest-pmap adds to pytest (registered in `pytest_addhooks`).

PYTEST_DONT_REWRITE: loaded by every run with the plugin installed; it holds no assert.

Implement them in a `conftest.py` or a plugin, as the examples in each docstring show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import pytest

if TYPE_CHECKING:
    from .._engine.mapping import Mapping
    from .._engine.snapshot import Snapshot
    from .._measure.budget import Violation
    from .._measure.probe import Probe
    from .._measure.result import MemoryResult


@pytest.hookspec(firstresult=True)
def pytest_pmap_ignore_mapping(mapping: Mapping) -> Optional[bool]:
    """Return True to leave `mapping` out of budgets, diffs and new-mapping checks.

    For memory that is reserved but not yours to budget, such as an allocator's arenas::

        def pytest_pmap_ignore_mapping(mapping):
            if mapping.path.startswith("/dev/nvidia"):
                return True
            return None  # let other implementations decide
    """


def pytest_pmap_snapshot(probe: Probe, snapshot: Snapshot) -> None:
    """Called with every snapshot a fixture's probe takes, for logging or extra checks::

        def pytest_pmap_snapshot(probe, snapshot):
            print(f"PID {probe.pid}: {len(snapshot.mappings)} mappings, uss {snapshot.uss}")
    """


def pytest_pmap_budget_exceeded(item: pytest.Item, violations: list[Violation]) -> None:
    """Called when a test breaks its budget, before its report is made::

        def pytest_pmap_budget_exceeded(item, violations):
            for v in violations:
                item.add_report_section("call", "budget", v.line)
    """


def pytest_pmap_session_report(results: list[MemoryResult]) -> None:
    """Called once at the end of a `--pmap` session (on the xdist controller only) with every
    test's measurement::

        def pytest_pmap_session_report(results):
            worst = max(results, key=lambda r: r.growth.get("rss") or 0, default=None)
            if worst is not None:
                print("most RSS growth:", worst.nodeid)
    """


def ignore_rule(config: pytest.Config) -> Optional[Callable[[Mapping], bool]]:
    """`pytest_pmap_ignore_mapping` as a predicate; None when no plugin implements it. (Not a hook:
    pytest takes only `pytest_` names in a module of hook specifications for hooks.)"""
    hook = config.hook.pytest_pmap_ignore_mapping
    if not hook.get_hookimpls():
        return None
    return lambda m: bool(hook(mapping=m))
