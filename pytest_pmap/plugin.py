"""pytest-pmap's pytest plugin, loaded through the `pytest11` entry point `pmap`.

pytest finds the hooks and fixtures here by name. Installed but not used, the plugin costs next to
nothing: at start-up this module loads only its options and settings (`_plugin.options`,
`_plugin.state`, `_plugin.hookspecs` and the table of names `_engine.metrics`, none of which
imports the engine); the fixtures, the per-test runner and the session's report are imported when
a fixture, a `pmap` marker, a budget in pyproject.toml or an option asks for them.

PYTEST_DONT_REWRITE: pytest rewrites the asserts of every module of a plugin's distribution that
is imported during a run; the plugin's own modules hold none worth rewriting.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

from ._plugin.options import pytest_addoption, pytest_configure
from ._plugin.state import SESSION, pmap_marker_lookup

if TYPE_CHECKING:
    from ._measure.probe import Probe

__all__ = [
    "pmap",
    "pmap_attach",
    "pmap_spawn",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_assertrepr_compare",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
]

#: The fixtures; a test that uses one needs the runner.
_FIXTURES = frozenset({"pmap", "pmap_spawn", "pmap_attach"})


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from ._plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Take part in running tests only when `--pmap` is on, pyproject.toml sets budgets, or some
    test uses a fixture or a `pmap` marker: a session that uses none of it imports nothing more."""
    state = config.stash[SESSION]
    if not state.measure and not state.leaks and state.config_budgets is None and not _asks_for_pmap(items):
        return
    from ._plugin.runner import take_part

    take_part(config, items)


def _asks_for_pmap(items: list[pytest.Item]) -> bool:
    """True when some test uses one of our fixtures or has a `pmap` marker (on itself, its class or
    its module)."""
    marked = pmap_marker_lookup()
    return any(not _FIXTURES.isdisjoint(getattr(item, "fixturenames", ())) or marked(item) for item in items)


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> Optional[list[str]]:
    # A `Reading` can only exist once the probe module is loaded: until then, no comparison is ours.
    if "pytest_pmap._measure.probe" not in sys.modules:
        return None
    from ._plugin.fixtures import explain

    return explain(op, left, right)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(SESSION, None)
    if state is not None and state.measure:
        from ._plugin.report import session_finish

        session_finish(session, state)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is not None and state.measure and not hasattr(config, "workerinput"):
        from ._plugin.report import terminal_summary

        terminal_summary(terminalreporter, state)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: gather a worker's measurements."""
    state = node.config.stash.get(SESSION, None)
    if state is not None and state.measure:
        from ._plugin.report import node_down

        node_down(node, error, state)


@pytest.fixture
def pmap(request: pytest.FixtureRequest) -> Probe:
    """A `Probe` on the test process itself: baseline and peak reset at setup."""
    from ._plugin import fixtures

    return fixtures.pmap(request)


@pytest.fixture
def pmap_spawn(request: pytest.FixtureRequest) -> Iterator[Callable[..., Probe]]:
    """`pmap_spawn(argv, tree=False, **popen_kwargs)` starts the process under test and returns its
    `Probe` (`probe.process` is the `subprocess.Popen`); with `tree=True`, a `TreeProbe` on it and
    everything it starts, measured as one. At teardown every process started, and everything it
    started, is sent SIGTERM, killed after a timeout, and reaped: none is left behind."""
    from ._plugin import fixtures

    yield from fixtures.pmap_spawn(request)


@pytest.fixture
def pmap_attach(request: pytest.FixtureRequest) -> Callable[..., Probe]:
    """`pmap_attach(pid, tree=False)` returns a `Probe` on a running process (with `tree=True`, a
    `TreeProbe` on it and all its descendants), which is never stopped by us."""
    from ._plugin import fixtures

    return fixtures.pmap_attach(request)


def __getattr__(name: str) -> Any:
    # Names earlier releases exported here, imported on first use.
    if name == "MemoryResult":
        from ._measure.result import MemoryResult

        return MemoryResult
    if name == "PmapWarning":
        from .errors import PmapWarning

        return PmapWarning
    raise AttributeError(f"module 'pytest_pmap.plugin' has no attribute {name!r}")
