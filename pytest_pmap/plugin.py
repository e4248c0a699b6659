"""The pytest layer: options, the `pmap` marker and `[tool.pytest_pmap]` budgets, fixtures,
failure reports, the `--pmap` summary, hooks and pytest-xdist. Loaded through the `pytest11`
entry point `pmap`.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from . import hooks
from ._procfs import default_procfs
from .boundary import BoundaryReader, growth
from .budget import Budget, BudgetConfig, Violation, check, describe_keys, parse_limits, report_text
from .errors import BudgetSyntaxError, PmapError
from .model import Mapping
from .probe import Probe, Reading
from .size import Size

__all__ = ["MemoryResult"]

PMAP_DESC = "measure every test's memory (growth, peak, new mappings) and print the tests that grew most"
TOP_DESC = "how many tests the --pmap summary lists (default 10)"
STOP_TIMEOUT = 5.0
"""Seconds a spawned process gets to exit after SIGTERM before it is killed."""

_NOT_LINUX = "pytest-pmap reads /proc/PID/smaps, which only Linux has"


@dataclass
class MemoryResult:
    """What `--pmap` measured for one test's call phase."""

    nodeid: str
    growth: dict[str, Optional[int]] = field(default_factory=dict)
    """Metric -> bytes gained during the call (negative when it shrank); None when not reported."""
    peak_growth: Optional[int] = None
    """How far the RSS peak during the call rose above the RSS at its start."""
    new_mappings: int = 0
    """Groups of mappings over address space new during the call."""
    largest_new: int = 0
    """Bytes of new address space in the largest of them."""
    budget: list[str] = field(default_factory=list)
    """The broken limits, as report lines."""


@dataclass
class _Session:
    """What the plugin keeps for one session (in `config.stash`)."""

    measure: bool
    top: int
    config_budgets: BudgetConfig
    """`[tool.pytest_pmap]` of pyproject.toml."""
    unavailable: str
    """Why memory maps cannot be read here ("" when they can), worked out once per session."""
    results: list[MemoryResult] = field(default_factory=list)
    reader: BoundaryReader = field(default_factory=BoundaryReader)


_SESSION = pytest.StashKey[_Session]()
_PROBES = pytest.StashKey[list[Probe]]()
_VIOLATIONS = pytest.StashKey[list[Violation]]()
_BUDGET = pytest.StashKey[Budget]()


def unavailable() -> str:
    """Why the plugin cannot read memory maps here; "" where it can."""
    if not sys.platform.startswith("linux"):
        return _NOT_LINUX
    root = default_procfs().root
    if not os.path.isdir(root):
        return f"there is no procfs at {root} (set PYTEST_PMAP_PROCFS to where it is mounted)"
    return ""


# -- configuration ------------------------------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pmap", "memory budgets from /proc/PID/smaps (pytest-pmap)")
    group.addoption("--pmap", action="store_true", default=None, help=PMAP_DESC)
    group.addoption("--pmap-top", type=int, default=None, metavar="N", help=TOP_DESC)
    parser.addini("pmap", PMAP_DESC, type="bool", default=False)
    parser.addini("pmap_top", TOP_DESC, default="10")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pmap(**limits): memory budget of the test process during this test; keys: "
        + "; ".join(describe_keys().splitlines()),
    )
    measure = config.getoption("pmap")
    if measure is None:
        measure = bool(config.getini("pmap"))
    top = config.getoption("pmap_top")
    if top is None:
        raw = config.getini("pmap_top")
        try:
            top = int(raw)
        except ValueError:
            raise pytest.UsageError(f"pmap_top = {raw!r} in the ini file is not a number of tests") from None
    if top < 0:
        raise pytest.UsageError(f"--pmap-top {top}: give 0 or more tests")
    pyproject, source = _read_pyproject(config)
    try:
        config_budgets = BudgetConfig.parse(pyproject, source)
    except BudgetSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None
    why = unavailable()
    config.stash[_SESSION] = _Session(measure, top, config_budgets, why)
    if measure and why:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"--pmap does nothing here: {why}"), 2)


def _read_pyproject(config: pytest.Config) -> tuple[dict[str, Any], str]:
    """`[tool.pytest_pmap]` of the project's pyproject.toml, and how to name it in errors."""
    path = Path(config.rootpath) / "pyproject.toml"
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        path = Path(config.inipath)
    if not path.is_file():
        return {}, "pyproject.toml [tool.pytest_pmap]"
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        import tomli as tomllib
    source = f"{path} [tool.pytest_pmap]"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"cannot read {path}: {exc}") from None
    section = data.get("tool", {}).get("pytest_pmap", {})
    if not isinstance(section, dict):
        raise pytest.UsageError(f"{source} must be a table")
    return section, source


def _ignore(config: pytest.Config) -> Optional[Callable[[Mapping], bool]]:
    """`pytest_pmap_ignore_mapping` as a predicate; None when no plugin implements it."""
    hook = config.hook.pytest_pmap_ignore_mapping
    if not hook.get_hookimpls():
        return None
    return lambda m: bool(hook(mapping=m))


def _probe(request: pytest.FixtureRequest, pid: Optional[int]) -> Probe:
    config = request.config
    probe = Probe(
        pid,
        ignore=_ignore(config),
        on_snapshot=lambda p, s: config.hook.pytest_pmap_snapshot(probe=p, snapshot=s),
    )
    request.node.stash.setdefault(_PROBES, []).append(probe)
    return probe


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def pmap(request: pytest.FixtureRequest) -> Probe:
    """A `Probe` on the test process itself: baseline and peak reset at setup."""
    why = request.config.stash[_SESSION].unavailable
    if why:
        pytest.skip(why)
    return _probe(request, None)


@pytest.fixture
def pmap_spawn(request: pytest.FixtureRequest) -> Iterator[Callable[..., Probe]]:
    """`pmap_spawn(argv, **popen_kwargs)` starts the process under test and returns its `Probe`
    (`probe.process` is the `subprocess.Popen`). At teardown every process started is sent
    SIGTERM, killed after a timeout, and reaped: none is left behind."""
    why = request.config.stash[_SESSION].unavailable
    if why:
        pytest.skip(why)
    started: list[subprocess.Popen[bytes]] = []

    def spawn(argv: Sequence[str | os.PathLike[str]], **popen_kwargs: Any) -> Probe:
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **popen_kwargs)
        started.append(proc)
        _LIVE.add(proc)
        probe = _probe(request, proc.pid)
        probe.process = proc
        return probe

    try:
        yield spawn
    finally:
        for proc in started:
            _stop(proc)


#: Spawned processes not yet reaped: if pytest itself is interrupted before the fixture's teardown
#: runs, they are killed and reaped when the interpreter exits.
_LIVE: set[subprocess.Popen[bytes]] = set()


def _stop(proc: subprocess.Popen[bytes], timeout: Optional[float] = None) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
    _LIVE.discard(proc)


@atexit.register
def _stop_the_rest() -> None:
    for proc in list(_LIVE):
        _stop(proc, timeout=0.5)


@pytest.fixture
def pmap_attach(request: pytest.FixtureRequest) -> Callable[[int], Probe]:
    """`pmap_attach(pid)` returns a `Probe` on a running process, which is never stopped by us."""
    why = request.config.stash[_SESSION].unavailable
    if why:
        pytest.skip(why)

    def attach(pid: int) -> Probe:
        return _probe(request, pid)

    return attach


# -- budgets and measurements -------------------------------------------------------------------------


def _budget(item: pytest.Item) -> Budget:
    state = item.config.stash[_SESSION]
    budget = state.config_budgets.for_test(item.nodeid)
    for mark in reversed(list(item.iter_markers("pmap"))):  # the closest marker wins
        if mark.args:
            raise BudgetSyntaxError(f"marker on {item.nodeid}: pmap() takes keyword limits only, got {mark.args!r}")
        source = f"marker on {item.nodeid}"
        budget = budget.merged(parse_limits(mark.kwargs, source), "marker")
    return budget


_FIXTURES = {"pmap", "pmap_spawn", "pmap_attach"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work out every test's budget now, and take part in running tests only if some test has a
    budget or uses a fixture, or `--pmap` is on: a session that uses none of it pays nothing."""
    needed = config.stash[_SESSION].measure
    for item in items:
        try:
            item.stash[_BUDGET] = _budget(item)
        except BudgetSyntaxError as exc:
            item.stash[_BUDGET_ERROR] = str(exc)
            needed = True
        else:
            needed = needed or bool(item.stash[_BUDGET]) or not _FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
    if needed and not config.pluginmanager.has_plugin(_RUNNER_NAME):
        config.pluginmanager.register(_Runner(), _RUNNER_NAME)


_RUNNER_NAME = "pmap-runner"
_BUDGET_ERROR = pytest.StashKey[str]()


class _Runner:
    """The hooks that run with every test, registered only when a session needs them."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(_BUDGET_ERROR, "")
        if error:
            pytest.fail(error, pytrace=False)
        why = item.config.stash[_SESSION].unavailable
        if item.stash.get(_BUDGET, None) and why:
            pytest.skip(f"memory budget not checked: {why}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        state = item.config.stash[_SESSION]
        budget = item.stash.get(_BUDGET, None) or Budget()
        if state.unavailable or not (budget or state.measure):
            return (yield)
        ignore = _ignore(item.config)
        start = None
        peak_note = ""
        if state.measure:
            peak_note = state.reader.reset_peak()
            start = state.reader.read()
        probe = Probe(None, ignore=ignore) if budget else None
        try:
            return (yield)
        finally:
            record = MemoryResult(item.nodeid)
            if start is not None:  # read before the budget check, whose snapshots allocate memory
                record = MemoryResult(item.nodeid, **growth(start, state.reader.read(), ignore))  # type: ignore[arg-type]
                if peak_note:
                    record.peak_growth = None
            if probe is not None:
                violations, unchecked = check(budget, probe)
                for line in unchecked:
                    item.add_report_section("call", "pmap", line)
                if violations:
                    item.stash[_VIOLATIONS] = violations
                    item.config.hook.pytest_pmap_budget_exceeded(item=item, violations=violations)
                    record.budget = [v.line for v in violations]
            if state.measure:
                state.results.append(record)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when != "call":
            return report
        violations = item.stash.get(_VIOLATIONS, [])
        if violations and report.passed:
            report.outcome = "failed"
            report.longrepr = report_text(violations)
        elif report.failed:  # the whole diff of every probe the test used, which an assertion shows in brief
            for probe in item.stash.get(_PROBES, []):
                try:
                    text = probe.diff().render(limit=15)
                except PmapError as exc:
                    text = f"no diff: {exc}"
                report.sections.append((f"pmap: PID {probe.pid} since its baseline", text))
        return report


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> Optional[list[str]]:
    reading = left if isinstance(left, Reading) else right if isinstance(right, Reading) else None
    if reading is None:
        return None
    other = right if reading is left else left
    shown = Size(other) if isinstance(other, (int, str)) and not isinstance(other, bool) else other
    first = f"{reading.what} {left if reading is left else shown} {op} {right if reading is right else shown}"
    try:
        explanation = reading.brief()
    except PmapError as exc:
        explanation = f"(no diff: {exc})"
    return [first, *explanation.rstrip("\n").splitlines()]


# -- the --pmap summary and pytest-xdist --------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: gather a worker's measurements."""
    state = node.config.stash.get(_SESSION, None)
    output = getattr(node, "workeroutput", {}) or {}
    if state is not None and "pmap_results" in output:
        state.results.extend(MemoryResult(**r) for r in output["pmap_results"])


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is None or not state.measure:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["pmap_results"] = [asdict(r) for r in state.results]
        return
    session.config.hook.pytest_pmap_session_report(results=state.results)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or not state.measure or hasattr(config, "workerinput"):
        return
    tr = terminalreporter
    tr.write_sep("=", "pmap: memory per test")
    if state.unavailable:
        tr.write_line(f"--pmap did nothing: {state.unavailable}")
        return
    for line in summary_table(state.results, state.top):
        tr.write_line(line)


def summary_table(results: list[MemoryResult], top: int) -> list[str]:
    """The `--pmap` table: the `top` tests by RSS growth, in pmap's K units."""
    if not results:
        return ["no test was measured"]

    def key(r: MemoryResult) -> tuple[int, int]:
        return (r.growth.get("rss") or 0, r.peak_growth or 0)

    ranked = sorted(results, key=key, reverse=True)[:top]

    def k(value: Optional[int]) -> str:
        return "n/a" if value is None else Size.of(value).signed()

    lines = [f"{'RSS':>10} {'USS':>10} {'peak':>10} {'w/private':>10} {'new maps':>8}  test"]
    for r in ranked:
        new = f"{r.new_mappings}" if r.new_mappings else "-"
        lines.append(
            f"{k(r.growth.get('rss')):>10} {k(r.growth.get('uss')):>10} {k(r.peak_growth):>10} "
            f"{k(r.growth.get('writeable_private')):>10} {new:>8}  {r.nodeid}"
            + ("  [budget exceeded]" if r.budget else "")
        )
    lines.append(f"{len(results)} tests measured; growth during each test's call, peak above its starting RSS")
    return lines

