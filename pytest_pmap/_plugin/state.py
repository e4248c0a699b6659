"""What the plugin keeps for one session, in `config.stash`: settings, the gate's files, the
results measured so far. Created at configure time (`options`), used by the runner and the report.

Loaded by every pytest run that has the plugin installed, used or not: it imports nothing of the
engine, the measuring or the gate (their types are named for annotations only).
PYTEST_DONT_REWRITE: it holds no assert worth pytest's rewriting.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pytest

from .._engine.metrics import DEFAULT_METRIC

if TYPE_CHECKING:
    from collections.abc import Callable

    from _pytest.nodes import Node

    from .._gate.compare import Comparison, Tolerance
    from .._gate.results import RunResults
    from .._measure.boundary import BoundaryReader
    from .._measure.budget import BudgetConfig
    from .._measure.result import MemoryResult

__all__ = ["OUTPUTS", "SESSION", "Gate", "Session", "pmap_marker_lookup", "unavailable"]

_NOT_LINUX = "pytest-pmap reads /proc/PID/smaps, which only Linux has"

#: The files a session can write: option name -> what the terminal calls the file.
OUTPUTS = {
    "pmap_json": "JSON results",
    "pmap_markdown": "Markdown summary",
    "pmap_save_baseline": "baseline",
    "pmap_bencher": "Bencher Metric Format results",
    "pmap_benchmark_action": "github-action-benchmark results",
    "pmap_html": "HTML report",
}


CONFIRM = 3
"""Repeats of a suspect's call by default (docs/gate.md: what 1, 3 and 5 measured)."""


@dataclass
class Gate:
    """The baseline comparison and the files of a session (all empty when none was asked for)."""

    metric: str = DEFAULT_METRIC
    tolerance: Optional[Tolerance] = None
    """None: the default tolerance (`Tolerance()`)."""
    baseline_path: Optional[Path] = None
    baseline: Optional[RunResults] = None
    """The baseline, loaded at start-up so that a bad file stops the run before any test."""
    judged: Optional[dict[str, MemoryResult]] = None
    """The baseline's results by test, where suspects are confirmed as the tests run (the
    controller, and every xdist worker); None when there is no baseline."""
    confirm: int = CONFIRM
    """`--pmap-confirm`: how many times a suspect's call is run again; 0 judges on one measurement."""
    allow_empty: bool = False
    """`--pmap-allow-empty-baseline`: a comparison that gates no test passes (with a warning)."""
    outputs: dict[str, Path] = field(default_factory=dict)
    """Option name (`pmap_json`, ...) -> where to write."""
    history: Optional[Path] = None
    """`--pmap-history`: the file each run appends its line to."""
    accept: dict[str, str] = field(default_factory=dict)
    """`[tool.pytest_pmap] accept`: node-id glob -> why its increase is known."""
    accept_source: str = ""
    """Where the accept table was read (`pyproject.toml [tool.pytest_pmap]`)."""
    comparison: Optional[Comparison] = None
    written: list[str] = field(default_factory=list)
    """What was written, as lines for the terminal."""
    errors: list[str] = field(default_factory=list)
    """What could not be written."""


@dataclass
class Session:
    """What the plugin keeps for one session (in `config.stash`)."""

    measure: bool
    """True when every test is measured (`--pmap`, or an option that implies it)."""
    top: int
    config_budgets: Optional[BudgetConfig]
    """`[tool.pytest_pmap]` of pyproject.toml; None when the file has no such table."""
    gate: Gate
    results: list[MemoryResult] = field(default_factory=list)
    repeating: bool = False
    """True while a test is run again to confirm a suspect: nothing is measured or recorded then
    but the repeat itself."""
    reader: Optional[BoundaryReader] = None
    """The per-test readings of `--pmap`, made when the first test is measured."""
    junit: bool = False
    """True when a JUnit XML report is written: each test's measurements go in as properties."""
    trace: bool = False
    """`--pmap-trace`: tracemalloc runs during every measured call."""
    trace_depth: Optional[int] = None
    """`--pmap-trace-depth`: frames per allocation; None for the tracer's default."""
    leaks: bool = False
    """`--pmap-leaks`: every test's call is repeated and judged for leaks."""
    leak_calls: Optional[int] = None
    """`--pmap-leaks-calls`: measured calls after the warm-up; None for the default."""
    stopped: str = ""
    """Why the session was interrupted (`KeyboardInterrupt`, `stopping after 1 failures`), "" if it was not."""
    collect_errors: int = 0
    """Files or modules that could not be collected: their tests were never run."""
    lost: list[str] = field(default_factory=list)
    """xdist workers that went down without handing over their measurements, as messages."""
    gathered: set[str] = field(default_factory=set)
    """xdist workers whose measurements were gathered (xdist may report a worker down twice)."""
    _unavailable: Optional[str] = field(default=None, repr=False)

    @property
    def unavailable(self) -> str:
        """Why memory maps cannot be read here ("" when they can), worked out once, when first asked."""
        if self._unavailable is None:
            self._unavailable = unavailable()
        return self._unavailable


SESSION = pytest.StashKey["Session"]()


def unavailable() -> str:
    """Why the plugin cannot read memory maps here; "" where it can."""
    if not sys.platform.startswith("linux"):
        return _NOT_LINUX
    from .._engine.procfs import default_procfs

    return default_procfs().problem()


def pmap_marker_lookup() -> Callable[[Node], bool]:
    """A function telling whether a test (or any node) has a `pmap` marker, on itself or on a
    parent (its class, its module): what `node.get_closest_marker("pmap") is not None` says, with
    each parent looked at once however many tests it holds."""
    marked: dict[int, bool] = {}

    def lookup(node: Optional[Node]) -> bool:
        if node is None:
            return False
        found = marked.get(id(node))
        if found is None:
            found = marked[id(node)] = any(m.name == "pmap" for m in node.own_markers) or lookup(node.parent)
        return found

    return lookup
