"""The per-test runner: every test's budget worked out at collection, the `--pmap` readings
around each call, budgets checked after it, failures reported with the pmap diff, and the
explanation of a failing assertion on a reading. Imported, and its hooks registered, only when a
session needs them (`pytest_pmap.plugin` decides)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Optional

import pytest

from .._engine.metrics import METRICS
from .._measure.boundary import BoundaryReader, growth
from .._measure.budget import Budget, Violation, check, report_text
from .._measure.heap import heap_in_use
from .._measure.probe import Probe, Reading
from .._measure.result import MemoryResult
from .._measure.trace import DEFAULT_DEPTH, Allocations, Tracer
from .._measure.treeprobe import TreeProbe
from ..errors import BudgetSyntaxError, PmapError, hide_from_tracebacks
from ..size import Size
from ..warnings import PmapWarning
from .confirm import confirm
from .fixtures import PROBES, ignore_rule
from .markers import budget_of, leaks_of, tolerance_of, trace_of, tree_of
from .state import SESSION, pmap_marker_lookup

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["FIXTURES", "explain", "take_part"]

_FAILURE = pytest.StashKey[str]()
"""The report of a test's broken budget."""
_BUDGET = pytest.StashKey[Budget]()
_TOLERANCE = pytest.StashKey[str]()
"""The marker's `tolerance=`: the gate's tolerance for this test (`off`: not gated)."""
_TREE = pytest.StashKey[bool]()
"""The marker's `tree=True`: the test's budget covers its descendants too."""
_TRACE = pytest.StashKey[bool]()
"""Whether tracemalloc runs during the test's call (`--pmap-trace`, or the marker's `trace=`)."""
_LEAKS = pytest.StashKey[int]()
"""How many measured calls the leak hunt makes of the test (`--pmap-leaks`, the marker's `leaks=`)."""
_ALLOCATIONS = pytest.StashKey[Allocations]()
"""What tracemalloc saw of the test's call, for its failure report and its result."""
_LEAK = pytest.StashKey[Any]()
"""The leak hunt's `LeakCheck` of the test, for its result."""


#: Our fixtures: a test that uses one has its probes released, and its failure report gets their diffs.
FIXTURES = frozenset({"pmap", "pmap_spawn", "pmap_attach"})


def take_part(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work out every test's budget now, and take part in running tests only as far as the session
    needs: the call of every test when `--pmap` is on or some test has a budget; its setup, report
    and teardown when some test has a budget (or a bad one) or uses a fixture."""
    budgets = checks = traced = hunting = False
    state = config.stash[SESSION]
    marked = pmap_marker_lookup()
    configured = state.config_budgets is not None
    from .._measure.leaks import DEFAULT_CALLS

    calls = state.leak_calls or DEFAULT_CALLS
    for item in items:
        if state.leaks:
            item.stash[_LEAKS] = calls
            hunting = True
        if not configured and not marked(item):  # no budget: nothing to work out
            if not checks and not FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
                checks = True
            continue
        try:
            budget = budget_of(item)
            tree = tree_of(item)
            tolerance = tolerance_of(item)
            trace = trace_of(item, state.trace) if marked(item) else state.trace
            leaks = leaks_of(item, state.leaks, calls) if marked(item) else item.stash.get(_LEAKS, 0)
        except BudgetSyntaxError as exc:
            item.stash[_BUDGET_ERROR] = str(exc)
            checks = True
            continue
        item.stash[_TRACE] = trace
        item.stash[_LEAKS] = leaks
        traced = traced or trace
        hunting = hunting or bool(leaks)
        if tolerance:
            item.stash[_TOLERANCE] = tolerance
        if budget:
            item.stash[_BUDGET] = budget
            item.stash[_TREE] = tree
            budgets = True
        elif not checks and not FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            checks = True
    manager = config.pluginmanager
    # a test that uses a fixture is traced too: its failing assertion names the lines
    if (budgets or state.measure or hunting or (checks and (traced or state.trace))) and not manager.has_plugin(_CALLS):
        manager.register(_Calls(), _CALLS)
    if (budgets or checks or hunting) and not manager.has_plugin(_CHECKS):
        manager.register(_Checks(), _CHECKS)


_CALLS, _CHECKS = "pmap-calls", "pmap-checks"
_BUDGET_ERROR = pytest.StashKey[str]()


class _Checks:
    """The hooks around a test that has a budget or uses a fixture: registered only when a session
    has such a test, so that a session that only measures pays for none of them."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = item.stash.get(_BUDGET_ERROR, "")
        if error:
            pytest.fail(error, pytrace=False)
        why = item.config.stash[SESSION].unavailable
        if item.stash.get(_BUDGET, None) and why:
            pytest.skip(f"memory budget not checked: {why}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when != "call":
            return report
        failure = item.stash.get(_FAILURE, "")
        if failure and report.passed and hasattr(report, "wasxfail"):  # expected to fail, and it did
            report.outcome = "skipped"
            report.longrepr = failure
        elif failure and report.passed:
            report.outcome = "failed"
            report.longrepr = failure
        elif report.failed:  # the whole diff of every probe the test used, which an assertion shows in brief
            for probe in item.stash.get(PROBES, []):
                report.sections.append((f"pmap: PID {probe.pid} since its baseline", _last_diff(probe)))
            allocations = item.stash.get(_ALLOCATIONS, None)
            if allocations is not None:
                report.sections.append(("pmap: tracemalloc", allocations.render()))
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:  # measuring must not inflate the process measured: nothing outlives its test
            if PROBES in item.stash:
                del item.stash[PROBES]
            for key in (_FAILURE, _ALLOCATIONS, _LEAK):
                if key in item.stash and not (key is not _FAILURE and item.config.stash[SESSION].measure):
                    del item.stash[key]  # kept for the result when measuring: the protocol's end drops them


class _Calls:
    """The hooks around every test: registered when `--pmap` is on or some test has a budget.

    `--pmap` measures a whole test: from before its first fixture is set up to after its last one
    is torn down, so that memory a fixture keeps counts as the test's, as memory its call keeps
    does. A budget (`@pytest.mark.pmap`) covers the call alone, as it always has."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        state = item.config.stash[SESSION]
        if state.measure and not state.repeating and not state.unavailable:
            if state.reader is None:
                state.reader = BoundaryReader()
            note = state.reader.reset_peak()
            start = state.reader.read()
            item.stash[_START] = (start, heap_in_use(), note)  # the heap last: the reading is not the test's
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        state = item.config.stash[SESSION]
        budget = item.stash.get(_BUDGET, None)
        traced = item.stash.get(_TRACE, state.trace)
        fixtures = not FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
        hunt_calls = item.stash.get(_LEAKS, 0)
        if state.unavailable or state.repeating or not (budget or hunt_calls or (traced and (state.measure or fixtures))):
            return (yield)
        ignore = ignore_rule(item.config)
        probe = None
        if budget:
            probe = TreeProbe(None, ignore=ignore) if item.stash.get(_TREE, False) else Probe(None, ignore=ignore)
        tracer = Tracer(state.trace_depth or DEFAULT_DEPTH, str(item.config.rootpath)) if traced else None
        if tracer is not None:  # last: our own readings above are not the test's allocations
            tracer.start()
        passed = False
        try:
            outcome = yield
            passed = True
            return outcome
        finally:
            violations: list[Violation] = []
            if probe is not None and budget is not None:
                violations, unchecked = check(budget, probe)
                for line in unchecked:  # never passed silently: a warning the session summary shows
                    item.add_report_section("call", "pmap", line)
                    item.warn(PmapWarning(f"memory budget {line}"))
            # stopped after the budget's reading (which its traces are part of), before anything is kept
            allocations = tracer.finish() if tracer is not None else None
            if allocations is not None:
                item.stash[_ALLOCATIONS] = allocations
            if violations:
                item.config.hook.pytest_pmap_budget_exceeded(item=item, violations=violations)
                text = report_text(violations)
                if allocations is not None:
                    text += "\n\n" + allocations.render(*_growth_of(violations[0]))
                item.stash[_FAILURE] = text
                item.stash[_BROKEN] = (tuple(v.line for v in violations), text)
            if hunt_calls and passed:  # the first call was the warm-up
                self._hunt(item, hunt_calls, traced)

    @staticmethod
    def _hunt(item: pytest.Item, calls: int, traced: bool) -> None:
        """The leak hunt of a test whose first call passed; a leak fails the test."""
        from .leaks import hunt

        state = item.config.stash[SESSION]
        state.repeating = True  # the repeats are no test's: nothing of ours measures them
        try:
            leak = hunt(item, state, calls, traced, ignore_rule(item.config))
        finally:
            state.repeating = False
        item.stash[_LEAK] = leak
        if leak.stopped:
            item.add_report_section("call", "pmap", leak.headline())
            item.warn(PmapWarning(leak.headline()))
        if leak.leaks:
            failure = item.stash.get(_FAILURE, "")
            item.stash[_FAILURE] = text = (failure + "\n\n" if failure else "") + leak.report()
            lines, _ = item.stash.get(_BROKEN, ((), ""))
            item.stash[_BROKEN] = (lines, text)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield  # as every other plugin left it (a broken budget fails a passed call)
        if not report.passed and not item.config.stash[SESSION].repeating:
            item.stash[_NOT_PASSED] = True
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            begun = item.stash.get(_START, None)
            state = item.config.stash[SESSION]
            if begun is not None and state.reader is not None and not state.repeating:
                del item.stash[_START]
                start, heap, note = begun
                heap_after = heap_in_use()  # first, for the same reason
                measured = growth(start, state.reader.read(), ignore_rule(item.config))
                measured["growth"]["heap"] = None if heap is None or heap_after is None else heap_after - heap  # type: ignore[index]
                if note:
                    measured["peak_growth"] = None
                item.stash[_MEASURED] = measured
                if state.junit:  # before the teardown's report, which carries them into the XML
                    item.user_properties.extend(_properties(MemoryResult(item.nodeid, **measured)))  # type: ignore[arg-type]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> Generator[None, object, object]:
        done = yield
        state = item.config.stash[SESSION]
        measured: Optional[dict[str, Any]] = item.stash.get(_MEASURED, None)
        if measured is None or state.repeating:
            return done
        del item.stash[_MEASURED]
        measured["tolerance"] = item.stash.get(_TOLERANCE, "")
        measured["budget"], measured["failure"] = item.stash.get(_BROKEN, ((), ""))
        measured["trace"] = item.stash.get(_ALLOCATIONS, None)
        measured["leak"] = item.stash.get(_LEAK, None)
        for key in (_ALLOCATIONS, _LEAK):
            if key in item.stash:
                del item.stash[key]
        try:
            if state.gate.judged is not None:
                state.repeating = True
                passed = not item.stash.get(_NOT_PASSED, False)
                measured.update(confirm(item, nextitem, state, MemoryResult(item.nodeid, **measured), passed))
        finally:  # Ctrl-C during a repeat stops the session, with this test's first run measured
            state.repeating = False
            if _BROKEN in item.stash:  # nothing of a test outlives it
                del item.stash[_BROKEN]
            if _NOT_PASSED in item.stash:
                del item.stash[_NOT_PASSED]
            state.results.append(MemoryResult(item.nodeid, **measured))
        return done


_START = pytest.StashKey[tuple[Any, Optional[int], str]]()
"""The reading before a test's setup: the boundary, the heap's in-use bytes, why the peak was not reset."""
_MEASURED = pytest.StashKey[dict[str, Any]]()
"""A test's growth from before its setup to after its teardown (the fields of a `MemoryResult`)."""
_NOT_PASSED = pytest.StashKey[bool]()
"""Some phase of the test did not pass: it is not run again to confirm anything."""
_BROKEN = pytest.StashKey[tuple[tuple[str, ...], str]]()
"""The broken limits of the test's budget, as report lines, and the failure's report."""


def _growth_of(violation: Violation) -> tuple[Optional[int], str]:
    """How much the memory behind a broken limit grew during the call, and what to call it: what
    tracemalloc's share is a share of."""
    key, evidence = violation.key, violation.evidence
    if key == "peak_growth":
        return int(violation.actual), key
    metric = key[: -len("_growth")] if key.endswith("_growth") else key
    if metric not in METRICS:
        metric = "uss"  # a new mapping's size or a peak: the memory the process holds is the fair whole
    if evidence is None:
        return None, ""
    return int(getattr(evidence.after, metric)) - int(getattr(evidence.before, metric)), f"{metric} growth"


def _last_diff(probe: Probe) -> str:
    """The diff of a failed test's probe up to the snapshot its last reading used (so its numbers
    are the assertion's), or up to now when it took none after its baseline."""
    try:
        last = probe.last if probe.last is not None and probe.last is not probe.baseline else None
        return probe.diff(last).render(limit=15)
    except PmapError as exc:
        return f"no diff: {exc}"


def _properties(record: MemoryResult) -> list[tuple[str, object]]:
    """A test's measurements as JUnit XML properties (`pmap_uss_growth` = bytes)."""
    props: list[tuple[str, object]] = [(f"pmap_{name}", value) for name, value in record.measured().items()]
    props.append(("pmap_new_mappings", record.new_mappings))
    return props


def explain(op: str, left: object, right: object) -> Optional[list[str]]:
    """`pytest_assertrepr_compare` for a comparison with a `Reading`: what it measured, and the diff
    that explains it; None for any other comparison."""
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
