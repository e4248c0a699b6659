"""The pytest layer: options, the `pmap` marker and `[tool.pytest_pmap]` budgets, fixtures,
failure reports, the `--pmap` summary, hooks and pytest-xdist. Loaded through the `pytest11`
entry point `pmap`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from . import hooks
from ._procfs import default_procfs
from .boundary import BoundaryReader, growth
from .budget import Budget, BudgetConfig, check, describe_keys, parse_limits, report_text
from .errors import BudgetSyntaxError, PmapError, ProcessGone, UsageError, hide_from_tracebacks
from .gate import DEFAULT_METRIC, Comparison, Tolerance, compare, parse_metric
from .model import Mapping
from .probe import Probe, Reading, exit_status
from .results import GATE_METRICS, MemoryResult, ResultsFileError, RunResults, current_environment
from .size import Size, change

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["MemoryResult", "PmapWarning"]


class PmapWarning(pytest.PytestWarning):
    """What a passing test would otherwise hide: a memory budget the kernel gives no numbers for,
    or a process `pmap_spawn` started that crashed or had to be killed. Make it an error with
    `-W error::pytest_pmap.PmapWarning`."""

PMAP_DESC = "measure every test's memory (growth, peak, new mappings) and print the tests that grew most"
TOP_DESC = "how many tests the --pmap summary lists (default 10)"
JSON_DESC = "write every test's measurements to PATH as JSON (usable as a baseline); implies --pmap"
MARKDOWN_DESC = (
    "write a pull-request summary to PATH in Markdown (regressions, budget failures, top growers); "
    "$GITHUB_STEP_SUMMARY is appended to; implies --pmap"
)
SAVE_BASELINE_DESC = "save every test's measurements to PATH, the baseline of later runs; implies --pmap"
BASELINE_DESC = (
    "fail the run when a test's metric (--pmap-metric) exceeds the baseline in PATH by more than "
    "the tolerance (--pmap-tolerance); implies --pmap"
)
TOLERANCE_DESC = (
    "how far a test may exceed its baseline: a percentage of the baseline, an absolute floor, or both, "
    "as in '2%,512KiB' (the default); widened to a huge page where transparent huge pages moved"
)
METRIC_DESC = f"the metric the baseline gate compares (default {DEFAULT_METRIC}): {', '.join(GATE_METRICS)}"
BENCHER_DESC = "write every test's metrics to PATH in Bencher Metric Format (bytes); implies --pmap"
BENCHMARK_ACTION_DESC = (
    "write the gated metric of every test to PATH for github-action-benchmark (tool: customSmallerIsBetter); "
    "implies --pmap"
)
STOP_TIMEOUT = 5.0
"""Seconds a spawned process gets to exit after SIGTERM before it is killed."""

_NOT_LINUX = "pytest-pmap reads /proc/PID/smaps, which only Linux has"


#: The files a session can write: option name -> what the terminal calls the file.
_OUTPUTS = {
    "pmap_json": "JSON results",
    "pmap_markdown": "Markdown summary",
    "pmap_save_baseline": "baseline",
    "pmap_bencher": "Bencher Metric Format results",
    "pmap_benchmark_action": "github-action-benchmark results",
}


@dataclass
class _Gate:
    """The baseline comparison and the files of a session (all empty when none was asked for)."""

    metric: str = DEFAULT_METRIC
    tolerance: Tolerance = Tolerance()
    baseline_path: Optional[Path] = None
    baseline: Optional[RunResults] = None
    """The baseline, loaded at start-up so that a bad file stops the run before any test."""
    outputs: dict[str, Path] = field(default_factory=dict)
    """Option name (`pmap_json`, ...) -> where to write."""
    comparison: Optional[Comparison] = None
    written: list[str] = field(default_factory=list)
    """What was written, as lines for the terminal."""
    errors: list[str] = field(default_factory=list)
    """What could not be written."""


@dataclass
class _Session:
    """What the plugin keeps for one session (in `config.stash`)."""

    measure: bool
    top: int
    config_budgets: BudgetConfig
    """`[tool.pytest_pmap]` of pyproject.toml."""
    unavailable: str
    """Why memory maps cannot be read here ("" when they can), worked out once per session."""
    gate: _Gate
    results: list[MemoryResult] = field(default_factory=list)
    reader: BoundaryReader = field(default_factory=BoundaryReader)
    junit: bool = False
    """True when a JUnit XML report is written: each test's measurements go in as properties."""


_SESSION = pytest.StashKey[_Session]()
_PROBES = pytest.StashKey[list[Probe]]()
_FAILURE = pytest.StashKey[str]()
"""The report of a test's broken budget."""
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
    group.addoption("--pmap-json", metavar="PATH", default=None, help=JSON_DESC)
    group.addoption("--pmap-markdown", metavar="PATH", default=None, help=MARKDOWN_DESC)
    group.addoption("--pmap-save-baseline", metavar="PATH", default=None, help=SAVE_BASELINE_DESC)
    group.addoption("--pmap-baseline", metavar="PATH", default=None, help=BASELINE_DESC)
    group.addoption("--pmap-tolerance", metavar="TOLERANCE", default=None, help=TOLERANCE_DESC.replace("%", "%%"))
    group.addoption("--pmap-metric", metavar="METRIC", default=None, help=METRIC_DESC)
    group.addoption("--pmap-bencher", metavar="PATH", default=None, help=BENCHER_DESC)
    group.addoption("--pmap-benchmark-action", metavar="PATH", default=None, help=BENCHMARK_ACTION_DESC)
    parser.addini("pmap", PMAP_DESC, type="bool", default=False)
    parser.addini("pmap_top", TOP_DESC, default="10")
    parser.addini("pmap_tolerance", TOLERANCE_DESC, default=None)
    parser.addini("pmap_metric", METRIC_DESC, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pmap(**limits): memory budget of the test process during this test; keys: "
        + "; ".join(describe_keys().splitlines()),
    )
    measure = config.getoption("pmap")
    if measure is None:
        try:
            measure = bool(config.getini("pmap"))
        except (ValueError, pytest.UsageError) as exc:  # pytest 9 raises the latter itself
            raise pytest.UsageError(f"pmap in {_ini_name(config)}: {exc}; write true or false, yes or no, "
                                    "1 or 0") from None
    top = config.getoption("pmap_top")
    if top is None:
        raw = config.getini("pmap_top")
        try:
            top = int(raw)
        except ValueError:
            raise pytest.UsageError(f"pmap_top = {raw!r} in {_ini_name(config)} is not a number of tests") from None
    if top < 0:
        raise pytest.UsageError(f"--pmap-top {top}: give 0 or more tests")
    pyproject, source = _read_pyproject(config)
    try:
        config_budgets = BudgetConfig.parse(pyproject, source)
    except BudgetSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None
    gate = _gate(config)
    measure = measure or bool(gate.outputs) or gate.baseline_path is not None
    why = unavailable()
    junit = bool(getattr(config.option, "xmlpath", None))
    config.stash[_SESSION] = _Session(measure, top, config_budgets, why, gate, junit=junit)
    if measure and why:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"--pmap does nothing here: {why}"), 2)


def _setting(config: pytest.Config, name: str) -> tuple[Optional[str], str]:
    """A setting's value from the command line, else the ini file, and how to name its source."""
    value = config.getoption(name)
    if value is not None:
        return value, f"--{name.replace('_', '-')}"
    value = config.getini(name)
    return (value or None), f"{name} in {_ini_name(config)}"


def _ini_name(config: pytest.Config) -> str:
    """The configuration file's name, for messages about a setting in it."""
    return config.inipath.name if config.inipath else "the ini file"


def _gate(config: pytest.Config) -> _Gate:
    """The gate's settings, checked; the baseline is read now, so a bad one stops the run early."""
    gate = _Gate()
    try:
        metric, source = _setting(config, "pmap_metric")
        if metric is not None:
            gate.metric = parse_metric(metric, source)
        tolerance, source = _setting(config, "pmap_tolerance")
        if tolerance is not None:
            gate.tolerance = Tolerance.parse(tolerance, source)
    except BudgetSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None
    worker = hasattr(config, "workerinput")  # an xdist worker measures; only the controller reads and writes files
    for name in _OUTPUTS:
        raw = config.getoption(name)
        if raw is None:
            continue
        path = Path(raw)
        if not worker:
            _check_writable(path, f"--{name.replace('_', '-')}")
        gate.outputs[name] = path
    raw = config.getoption("pmap_baseline")
    if raw is not None:
        gate.baseline_path = Path(raw)
        if not worker:
            try:
                gate.baseline = RunResults.load(raw, "baseline file")
            except ResultsFileError as exc:
                raise pytest.UsageError(
                    f"--pmap-baseline: {exc} (save one with --pmap-save-baseline {raw})"
                ) from None
    return gate


def _check_writable(path: Path, option: str) -> None:
    """Stop before the tests run if `path` cannot be written at the end."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise pytest.UsageError(f"{option} {path}: that is a folder; give a file name")
    if not folder.is_dir():
        raise pytest.UsageError(f"{option} {path}: folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{option} {path}: folder {str(folder)!r} is not writable")


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
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def spawn(argv: Sequence[str | os.PathLike[str]], **popen_kwargs: Any) -> Probe:
        if not argv:
            raise UsageError("pmap_spawn needs a command to start: argv is empty")
        program = os.fsdecode(argv if isinstance(argv, (str, bytes, os.PathLike)) else argv[0])
        try:
            proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **popen_kwargs)
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"pmap_spawn could not start {program!r}: {getattr(exc, 'strerror', None) or exc}") from None
        started.append((proc, program))
        _LIVE.add(proc)
        try:
            probe = _probe(request, proc.pid)
        except ProcessGone:
            if proc.poll() is None:
                raise
            raise ProcessGone(f"pmap_spawn: {program!r} (PID {proc.pid}) {exit_status(proc.returncode)} before its "
                              "memory map could be read: there was nothing to measure") from None
        probe.process = proc
        return probe

    try:
        yield spawn
    finally:
        for proc, program in started:
            crashed = proc.poll() is not None and -proc.returncode in _CRASH_SIGNALS
            killed = _stop(proc)
            if crashed or killed:
                what = "crashed: it " + exit_status(proc.returncode) if crashed else \
                    f"ignored SIGTERM for {STOP_TIMEOUT:g} s and was killed with SIGKILL"
                request.node.warn(PmapWarning(f"pmap_spawn: {program!r} (PID {proc.pid}) {what}"))


#: Spawned processes not yet reaped: if pytest itself is interrupted before the fixture's teardown
#: runs, they are killed and reaped when the interpreter exits.
_LIVE: set[subprocess.Popen[bytes]] = set()


#: Signals that mean a process crashed (rather than was stopped): the fixture warns of them.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


def _stop(proc: subprocess.Popen[bytes], timeout: Optional[float] = None) -> bool:
    """Stop and reap `proc`: SIGTERM, then SIGKILL after the timeout. True when it took SIGKILL."""
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            killed = True
    proc.wait()
    _LIVE.discard(proc)
    return killed


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
            measured: dict[str, Any] = {}
            if start is not None:  # read before the budget check, whose snapshots allocate memory
                measured = growth(start, state.reader.read(), ignore)
                if peak_note:
                    measured["peak_growth"] = None
            if probe is not None:
                violations, unchecked = check(budget, probe)
                for line in unchecked:  # never passed silently: a warning the session summary shows
                    item.add_report_section("call", "pmap", line)
                    item.warn(PmapWarning(f"memory budget {line}"))
                if violations:
                    item.config.hook.pytest_pmap_budget_exceeded(item=item, violations=violations)
                    item.stash[_FAILURE] = measured["failure"] = report_text(violations)
                    measured["budget"] = tuple(v.line for v in violations)
            if state.measure:
                record = MemoryResult(item.nodeid, **measured)
                state.results.append(record)
                if state.junit:
                    item.user_properties.extend(_properties(record))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when != "call":
            return report
        failure = item.stash.get(_FAILURE, "")
        if failure and report.passed:
            report.outcome = "failed"
            report.longrepr = failure
        elif report.failed:  # the whole diff of every probe the test used, which an assertion shows in brief
            for probe in item.stash.get(_PROBES, []):
                try:
                    text = probe.diff().render(limit=15)
                except PmapError as exc:
                    text = f"no diff: {exc}"
                report.sections.append((f"pmap: PID {probe.pid} since its baseline", text))
        return report


def _properties(record: MemoryResult) -> list[tuple[str, object]]:
    """A test's measurements as JUnit XML properties (`pmap_uss_growth` = bytes)."""
    props: list[tuple[str, object]] = [(f"pmap_{name}", value) for name, value in record.measured().items()]
    props.append(("pmap_new_mappings", record.new_mappings))
    return props


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
        state.results.extend(MemoryResult.from_json(r) for r in output["pmap_results"])


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is None or not state.measure:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller compares and writes
        workeroutput["pmap_results"] = [r.to_json() for r in state.results]
        return
    if not state.unavailable:
        failed = _gate_and_write(state.gate, tuple(state.results), session.exitstatus)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.hook.pytest_pmap_session_report(results=state.results)


def _gate_and_write(gate: _Gate, results: tuple[MemoryResult, ...], exitstatus: int) -> bool:
    """Compare with the baseline and write the files; True when the run must fail for it."""
    if gate.baseline is None and not gate.outputs:  # plain --pmap: nothing to compare or write
        return False
    from .reports import write_report

    run = RunResults(results, current_environment())
    if gate.baseline is not None:
        gate.comparison = compare(gate.baseline, run, gate.metric, gate.tolerance, f"baseline {gate.baseline_path}")
    for name, path in gate.outputs.items():
        what = _OUTPUTS[name]
        if name == "pmap_save_baseline" and exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            gate.errors.append(f"{what} not saved to {path}: the run was interrupted, its measurements are incomplete")
            continue
        try:
            done = write_report(path, _render(name, run, gate))
        except PmapError as exc:
            gate.errors.append(f"{what} not written: {exc}")
        else:
            gate.written.append(f"{done} {what} {path} ({len(run.results)} tests)")
    return bool(gate.errors) or (gate.comparison is not None and not gate.comparison.passed)


def _render(name: str, run: RunResults, gate: _Gate) -> bytes:
    """The bytes of one output file."""
    from .reports import benchmark_action, bencher, markdown
    if name == "pmap_markdown":
        return markdown(run, gate.comparison, gate.metric).encode()
    if name == "pmap_bencher":
        return json.dumps(bencher(run), indent=1).encode() + b"\n"
    if name == "pmap_benchmark_action":
        return json.dumps(benchmark_action(run, gate.metric), indent=1).encode() + b"\n"
    return run.dumps()  # --pmap-json and --pmap-save-baseline: the same document


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
    if state.reader.totals_from == "smaps":
        tr.write_line("pmap: this kernel has no smaps_rollup: PSS and USS were summed over smaps (the same numbers, "
                      "read more slowly)")
    gate = state.gate
    if gate.comparison is not None:
        tr.write_sep("-", "pmap: the baseline gate", red=not gate.comparison.passed, green=gate.comparison.passed)
        for line in gate.comparison.table():
            tr.write_line(line, yellow=line.startswith("WARNING"))
    for line in gate.written:
        tr.write_line(f"pmap: {line}")
    for line in gate.errors:
        tr.write_line(f"pmap: ERROR: {line}", red=True)


def summary_table(results: list[MemoryResult], top: int) -> list[str]:
    """The `--pmap` table: the `top` tests by RSS growth, in pmap's K units."""
    if not results:
        return ["no test was measured"]

    def key(r: MemoryResult) -> tuple[int, int]:
        return (r.growth.get("rss") or 0, r.peak_growth or 0)

    ranked = sorted(results, key=key, reverse=True)[:top]

    lines = [f"{'RSS':>10} {'USS':>10} {'peak':>10} {'w/private':>10} {'new maps':>8}  test"]
    for r in ranked:
        new = f"{r.new_mappings}" if r.new_mappings else "-"
        lines.append(
            f"{change(r.growth.get('rss')):>10} {change(r.growth.get('uss')):>10} {change(r.peak_growth):>10} "
            f"{change(r.growth.get('writeable_private')):>10} {new:>8}  {r.nodeid}"
            + ("  [budget exceeded]" if r.budget else "")
        )
    lines.append(f"{len(results)} tests measured; growth during each test's call, peak above its starting RSS")
    return lines

