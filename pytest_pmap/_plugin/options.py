"""Options, ini keys and `[tool.pytest_pmap]`: each help text written once, every setting resolved
in one place (command line > ini/pyproject > default) and checked before any test runs.

Loaded by every pytest run that has the plugin installed, used or not: what a setting needs (the
gate's parsers, the baseline file, the budget parser, TOML) is imported only when it is set.
PYTEST_DONT_REWRITE: it holds no assert worth pytest's rewriting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest

from .._engine.metrics import DEFAULT_METRIC, GATE_METRICS, MARKER_SWITCHES, describe_budget_keys
from .state import CONFIRM, OUTPUTS, SESSION, Gate, Session

if TYPE_CHECKING:
    from .._measure.budget import BudgetConfig

__all__ = ["pytest_addoption", "pytest_configure"]

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
ALLOW_EMPTY_DESC = (
    "run the --pmap-baseline gate even when it can compare no test (the baseline has no results, none for "
    "this run's tests, or no value of the metric); without it such a gate fails, since it would pass anything"
)
ALLOW_INCOMPLETE_DESC = (
    "accept a --pmap-baseline saved from a run that did not finish (interrupted, stopped by -x or --maxfail, "
    "crashed); the tests it did not measure pass as new"
)
BENCHER_DESC = "write every test's metrics to PATH in Bencher Metric Format (bytes); implies --pmap"
BENCHMARK_ACTION_DESC = (
    "write the gated metric of every test to PATH for github-action-benchmark (tool: customSmallerIsBetter); "
    "implies --pmap"
)
HISTORY_DESC = (
    "append one line to PATH at the end of each run (commit, branch, time, environment, every test's figures), "
    "for `pytest-pmap trend` and the HTML report's charts; implies --pmap"
)
HTML_DESC = (
    "write one self-contained HTML page of the run to PATH (summary, sortable table, charts, failing tests' "
    "pmap diffs; with --pmap-history, the history's charts); implies --pmap"
)
MALLOC_DESC = (
    "fix glibc's mmap threshold (128 KiB) and trim threshold (1 MiB) in the test process for the session, "
    "so that a leaked block of 128 KiB or more is a mapping of its own and always seen; changes how the "
    "code under test allocates, so it is off by default"
)
TRACE_DESC = (
    "run tracemalloc during each measured test's call (budgets, the pmap fixture, --pmap, --pmap-leaks): "
    "a failure, a regression or a leak then names the Python lines that kept the memory"
)
LEAKS_DESC = (
    "hunt leaks: run each test's call once to warm up, then N more times (--pmap-leaks-calls) with its fixtures "
    "set up once, and fail a test whose memory grows call after call (a cache that fills once is not a leak)"
)
LEAKS_CALLS_DESC = "measured calls per test under --pmap-leaks, after the warm-up (default 5)"
TRACE_DEPTH_DESC = "frames tracemalloc keeps per allocation under --pmap-trace (default 8; more costs more)"


CONFIRM_DESC = (
    f"run a test that exceeds its baseline again, whole, N times (0-100, default {CONFIRM}) before the gate fails it; "
    "it fails only when every repeat grows again; 0 judges on one measurement"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pmap", "memory budgets from /proc/PID/smaps (pytest-pmap)")
    group.addoption("--pmap", action="store_true", default=None, help=PMAP_DESC)
    group.addoption("--pmap-top", type=int, default=None, metavar="N", help=TOP_DESC)
    group.addoption("--pmap-json", metavar="PATH", default=None, help=JSON_DESC)
    group.addoption("--pmap-markdown", metavar="PATH", default=None, help=MARKDOWN_DESC)
    group.addoption("--pmap-save-baseline", metavar="PATH", default=None, help=SAVE_BASELINE_DESC)
    group.addoption("--pmap-baseline", metavar="PATH", default=None, help=BASELINE_DESC)
    group.addoption("--pmap-allow-empty-baseline", action="store_true", default=False, help=ALLOW_EMPTY_DESC)
    group.addoption("--pmap-allow-incomplete-baseline", action="store_true", default=False, help=ALLOW_INCOMPLETE_DESC)
    group.addoption("--pmap-tolerance", metavar="TOLERANCE", default=None, help=TOLERANCE_DESC.replace("%", "%%"))
    group.addoption("--pmap-metric", metavar="METRIC", default=None, help=METRIC_DESC)
    group.addoption("--pmap-bencher", metavar="PATH", default=None, help=BENCHER_DESC)
    group.addoption("--pmap-benchmark-action", metavar="PATH", default=None, help=BENCHMARK_ACTION_DESC)
    group.addoption("--pmap-history", metavar="PATH", default=None, help=HISTORY_DESC)
    group.addoption("--pmap-html", metavar="PATH", default=None, help=HTML_DESC)
    group.addoption("--pmap-malloc-thresholds", action="store_true", default=None, help=MALLOC_DESC)
    group.addoption("--pmap-trace", action="store_true", default=None, help=TRACE_DESC)
    group.addoption("--pmap-trace-depth", type=int, default=None, metavar="N", help=TRACE_DEPTH_DESC)
    group.addoption("--pmap-leaks", action="store_true", default=None, help=LEAKS_DESC)
    group.addoption("--pmap-leaks-calls", type=int, default=None, metavar="N", help=LEAKS_CALLS_DESC)
    group.addoption("--pmap-confirm", metavar="N", default=None, help=CONFIRM_DESC)
    parser.addini("pmap", PMAP_DESC, type="bool", default=False)
    parser.addini("pmap_trace", TRACE_DESC, type="bool", default=False)
    parser.addini("pmap_trace_depth", TRACE_DEPTH_DESC, default=None)
    parser.addini("pmap_leaks", LEAKS_DESC, type="bool", default=False)
    parser.addini("pmap_leaks_calls", LEAKS_CALLS_DESC, default=None)
    parser.addini("pmap_confirm", CONFIRM_DESC, default=None)
    parser.addini("pmap_malloc_thresholds", MALLOC_DESC, type="bool", default=False)
    parser.addini("pmap_top", TOP_DESC, default="10")
    parser.addini("pmap_tolerance", TOLERANCE_DESC, default=None)
    parser.addini("pmap_metric", METRIC_DESC, default=None)
    parser.addini("pmap_history", HISTORY_DESC, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pmap(**limits): memory budget of the test process during this test ("
        + "; ".join(MARKER_SWITCHES.values()) + "); keys: " + "; ".join(describe_budget_keys().splitlines()),
    )
    measure = _flag(config, "pmap")
    if _flag(config, "pmap_malloc_thresholds"):  # first, before we allocate anything for the session
        from .._measure.allocator import fix_malloc_thresholds

        fix_malloc_thresholds()
    top = _count(config, "pmap_top", "tests", 0)
    config_budgets, accept, accept_source = _config_budgets(config)
    gate = _gate(config)
    gate.accept, gate.accept_source = accept, accept_source
    measure = measure or bool(gate.outputs) or gate.baseline_path is not None or gate.history is not None
    junit = bool(getattr(config.option, "xmlpath", None))
    session = config.stash[SESSION] = Session(measure, top, config_budgets, gate, junit=junit)
    if hasattr(config, "workerinput"):  # now, before the controller can have died (see processes.end_with)
        session.controller = os.getppid()
    session.trace = _flag(config, "pmap_trace")
    if config.getoption("pmap_trace_depth") is not None or config.getini("pmap_trace_depth"):
        session.trace_depth = _count(config, "pmap_trace_depth", "frames", 1)
    session.leaks = _flag(config, "pmap_leaks")
    if config.getoption("pmap_leaks_calls") is not None or config.getini("pmap_leaks_calls"):
        session.leak_calls = _count(config, "pmap_leaks_calls", "calls", 2)
    if measure:  # what the run's end says of how it ended: an interrupted run is not a baseline
        from .report import Outcome

        config.pluginmanager.register(Outcome(session), "pmap-outcome")
    files = [f"--{name.replace('_', '-')}" for name in gate.outputs]
    files += ["--pmap-baseline"] if gate.baseline_path is not None else []
    files += ["--pmap-history"] if gate.history is not None else []
    if files and session.unavailable:  # a gate that cannot measure would pass every run: stop now
        raise pytest.UsageError(f"{' and '.join(files)}: memory cannot be measured here: {session.unavailable}")
    if measure and session.unavailable:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"--pmap does nothing here: {session.unavailable}"), 2)
    if measure and not session.unavailable:
        # Last, after everything we read at start-up (the baseline, pyproject.toml): hand the heap
        # that reading freed back to the kernel, so the tests' allocations do not land in it unseen.
        import gc

        from .._measure.heap import trim

        gc.collect()
        trim()


def _config_budgets(config: pytest.Config) -> tuple[Optional[BudgetConfig], dict[str, str], str]:
    """The budgets of `[tool.pytest_pmap]`, checked (None when pyproject.toml has no such table),
    its `accept` table (node-id glob -> reason) and where it was read."""
    pyproject, source = _read_pyproject(config)
    if pyproject is None:
        return None, {}, ""
    from .._measure.budget import BudgetConfig
    from ..errors import BudgetSyntaxError

    try:
        accept: dict[str, str] = {}
        if "accept" in pyproject:
            from .._gate.accept import parse_accept

            accept = parse_accept(pyproject["accept"], source)
        # Reports name the file, not the runner's path to it.
        return BudgetConfig.parse(pyproject, source), accept, "pyproject.toml [tool.pytest_pmap]"
    except BudgetSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None


def _flag(config: pytest.Config, name: str) -> bool:
    """An on/off setting from the command line, else the ini file."""
    value = config.getoption(name)
    if value is not None:
        return bool(value)
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest 9 raises the latter itself
        raise pytest.UsageError(f"{name} in {_ini_name(config)}: {exc}; write true or false, yes or no, "
                                "1 or 0") from None


def _count(config: pytest.Config, name: str, what: str, least: int) -> int:
    """A whole-number setting from the command line, else the ini file, at least `least`."""
    value = config.getoption(name)
    source = f"--{name.replace('_', '-')} {value}"
    if value is None:
        raw = config.getini(name)
        source = f"{name} = {raw!r} in {_ini_name(config)}"
        try:
            value = int(raw)
        except ValueError:
            raise pytest.UsageError(f"{source} is not a number of {what}") from None
    if value < least:
        raise pytest.UsageError(f"{source}: give {least} or more {what}")
    return int(value)


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


def _gate(config: pytest.Config) -> Gate:
    """The gate's settings, checked; the baseline is read now, so a bad one stops the run early."""
    gate = Gate()
    metric, metric_source = _setting(config, "pmap_metric")
    tolerance, tolerance_source = _setting(config, "pmap_tolerance")
    if metric is not None or tolerance is not None:
        from .._gate.compare import Tolerance, parse_metric
        from ..errors import BudgetSyntaxError

        try:
            if metric is not None:
                gate.metric = parse_metric(metric, metric_source)
            if tolerance is not None:
                gate.tolerance = Tolerance.parse(tolerance, tolerance_source)
        except BudgetSyntaxError as exc:
            raise pytest.UsageError(str(exc)) from None
    worker = hasattr(config, "workerinput")  # an xdist worker measures; only the controller reads and writes files
    gate.allow_empty = bool(config.getoption("pmap_allow_empty_baseline"))
    files: dict[str, str] = {}  # option name -> the file it replaces at the end ("" for one written through)
    for name in OUTPUTS:
        raw = config.getoption(name)
        if raw is None:
            continue
        path, option = Path(raw), f"--{name.replace('_', '-')}"
        if not worker:
            files[name] = _check_writable(raw, option)  # the name as given: Path('') would be '.'
        gate.outputs[name] = path
    history, history_source = _setting(config, "pmap_history")
    if history is not None and config.getoption("pmap_history") is None and config.inipath is not None:
        history = os.path.join(config.inipath.parent, history)  # an ini file's path is relative to the ini file
    if history is not None:
        gate.history = Path(history)
        if not worker:
            _check_history(history, history_source)
    raw = config.getoption("pmap_baseline")
    if raw is not None:
        gate.baseline_path = Path(raw)
        gate.confirm = _confirm(config)
        from .._gate.results import ResultsFileError, load_baseline

        try:  # every xdist worker reads it too, to confirm its own suspects as they run
            baseline = load_baseline(
                raw, allow_empty=gate.allow_empty, allow_incomplete=bool(config.getoption("pmap_allow_incomplete_baseline"))
            )
        except ResultsFileError as exc:
            hint = "" if os.path.exists(raw) else f" (save one with --pmap-save-baseline {raw})"
            raise pytest.UsageError(f"--pmap-baseline: {exc}{hint}") from None
        gate.judged = baseline.by_test()
        if not worker:
            gate.baseline = baseline
    if not worker:
        _check_distinct(gate, files)
    return gate


def _confirm(config: pytest.Config) -> int:
    """`--pmap-confirm N` (or ini `pmap_confirm`), checked."""
    raw, source = _setting(config, "pmap_confirm")
    if raw is None:
        return CONFIRM
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if not 0 <= count <= 100:
        raise pytest.UsageError(f"{source}: {raw!r} is not a number of repeats from 0 (judge on one measurement) to 100")
    return count


def _check_distinct(gate: Gate, files: dict[str, str]) -> None:
    """Stop before the tests run if two files of the session are one: the later write would
    replace the earlier, and a report written over the baseline would replace what it is gated
    against. (`--pmap-save-baseline` may name the baseline: that updates it, when the gate passes.)
    `files` holds each output's file as the writer will replace it; one written through (a device,
    a FIFO, /dev/stdout) can take several reports."""
    seen: dict[str, str] = {}
    if gate.baseline_path is not None:
        seen[os.path.realpath(gate.baseline_path)] = f"--pmap-baseline {gate.baseline_path}"
    if gate.history is not None:
        history = os.path.realpath(gate.history)
        if history in seen:
            raise pytest.UsageError(f"--pmap-history {gate.history} is the same file as {seen[history]}: appending to "
                                    "it would spoil that file; give the history a file of its own")
        seen[history] = f"--pmap-history {gate.history}"
    for name, path in gate.outputs.items():
        option, key = f"--{name.replace('_', '-')} {path}", files.get(name, "")
        if not key:
            continue
        other = seen.get(key)
        if other is not None and not (name == "pmap_save_baseline" and other.startswith("--pmap-baseline ")):
            raise pytest.UsageError(
                f"{option} is the same file as {other}: writing it would replace "
                + ("the baseline this run is gated against; to update a baseline, use --pmap-save-baseline"
                   if other.startswith("--pmap-baseline ") else "the other; give each its own file")
            )
        seen.setdefault(key, option)


def _check_history(path: str, source: str) -> None:
    """Stop before the tests run if the history file cannot be appended to at the end (the
    gate's own check, which `pytest-pmap merge --history` asks too)."""
    from .._gate.history import HistoryFileError, check_history

    try:
        check_history(path)
    except HistoryFileError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def _check_writable(path: str | os.PathLike[str], option: str) -> str:
    """Stop before the tests run if `path` cannot be written at the end (the writer's own check:
    a device, a FIFO or /dev/stdout is written through, a regular file replaced in its folder).
    Returns the file that will be replaced, "" for one written through."""
    from .._engine.files import check_writable
    from ..errors import PmapError

    try:
        where = check_writable(path)
    except PmapError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None
    return os.path.realpath(where.path) if where.kind in ("new", "file") else ""


def _read_pyproject(config: pytest.Config) -> tuple[Optional[dict[str, Any]], str]:
    """`[tool.pytest_pmap]` of the project's pyproject.toml (None when there is no such table), and
    how to name it in errors. A file that does not mention `pytest_pmap` anywhere has no such
    table: it is not parsed."""
    path = Path(config.rootpath) / "pyproject.toml"
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        path = Path(config.inipath)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None, ""
    except OSError as exc:
        raise pytest.UsageError(f"cannot read {path}: {exc}") from None
    if b"pytest_pmap" not in data:
        return None, ""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        import tomli as tomllib
    source = f"{path} [tool.pytest_pmap]"
    try:
        section = tomllib.loads(data.decode("utf-8")).get("tool", {}).get("pytest_pmap")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"cannot read {path}: {exc}") from None
    if section is None:
        return None, ""
    if not isinstance(section, dict):
        raise pytest.UsageError(f"{source} must be a table")
    return section, source
