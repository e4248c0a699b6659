"""The per-test runner: every test's budget worked out at collection, the `--pmap` readings
around each test, budgets checked after its call, failures reported with the pmap diff. Imported,
and its hooks registered, only when a session needs them (`pytest_pmap.plugin` decides)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

import pytest

from .._measure.boundary import BoundaryReader, Start, begin, since
from .._measure.result import MemoryResult
from ..errors import BudgetSyntaxError, PmapError, hide_from_tracebacks
from .hookspecs import ignore_rule
from .state import SESSION, Session, pmap_marker_lookup

if TYPE_CHECKING:
    from .._measure.budget import Budget, Violation
    from .._measure.probe import Probe
    from .._measure.trace import Allocations

# Budgets, probes, markers, tracing, the leak hunt and the gate's confirmation are imported where a
# session first needs them: a session that only measures (`--pmap`) loads none of them.

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["FIXTURES", "take_part"]

_FAILURE = pytest.StashKey[str]()
"""The report of a test's broken budget."""
_BUDGET: pytest.StashKey[Budget] = pytest.StashKey()
_TOLERANCE = pytest.StashKey[str]()
"""The marker's `tolerance=`: the gate's tolerance for this test (`off`: not gated)."""
_TREE = pytest.StashKey[bool]()
"""The marker's `tree=True`: the test's budget covers its descendants too."""
_TRACE = pytest.StashKey[bool]()
"""Whether tracemalloc runs during the test's call (`--pmap-trace`, or the marker's `trace=`)."""
_LEAKS = pytest.StashKey[int]()
"""How many measured calls the leak hunt makes of the test (`--pmap-leaks`, the marker's `leaks=`)."""
_ALLOCATIONS: pytest.StashKey[Allocations] = pytest.StashKey()
"""What tracemalloc saw of the test's call, for its failure report and its result."""
_LEAK = pytest.StashKey[Any]()
"""The leak hunt's `LeakCheck` of the test, for its result."""


#: Our fixtures: a test that uses one has its probes released, and its failure report gets their diffs.
FIXTURES = frozenset({"pmap", "pmap_spawn", "pmap_attach"})


def take_part(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work out every test's budget now, and take part in running tests only as far as the session
    needs: the call of every test when `--pmap` is on or some test has a budget; its setup, report
    and teardown when some test has a budget (or a bad one) or uses a fixture."""
    budgets = checks = traced = hunting = tolerances = False
    state = config.stash[SESSION]
    marked = pmap_marker_lookup()
    configured = state.config_budgets is not None
    calls = state.leak_calls or 0
    if not calls and (state.leaks or configured or any(marked(item) for item in items)):
        from .._measure.leaks import DEFAULT_CALLS

        calls = DEFAULT_CALLS
    for item in items:
        if state.leaks:
            item.stash[_LEAKS] = calls
            hunting = True
        if not configured and not marked(item):  # no budget: nothing to work out
            if not checks and not FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
                checks = True
            continue
        from .markers import budget_of, leaks_of, tolerance_of, trace_of, tree_of

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
            tolerances = True
        if budget:
            item.stash[_BUDGET] = budget
            item.stash[_TREE] = tree
            budgets = True
        elif not checks and not FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            checks = True
    manager = config.pluginmanager
    # Each concern registers its hooks only when the session has it: every hook implementation is
    # a call more on every test (the makereport hook, three), whether it does anything or not.
    if state.measure and not state.unavailable and not manager.has_plugin(_MEASURE):
        manager.register(_Measure(state, own=budgets or tolerances or traced or state.trace or hunting), _MEASURE)
        if state.gate.judged is not None:
            manager.register(_Confirm(state), _CONFIRM)
    # a test that uses a fixture is traced too: its failing assertion names the lines
    if (budgets or hunting or ((traced or state.trace) and (state.measure or checks))) and not manager.has_plugin(_CALLS):
        manager.register(_Calls(), _CALLS)
    if (budgets or checks or hunting) and not manager.has_plugin(_CHECKS):
        manager.register(_Checks(), _CHECKS)


_MEASURE, _CONFIRM, _CALLS, _CHECKS = "pmap-measure", "pmap-confirm", "pmap-calls", "pmap-checks"
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
            from .fixtures import PROBES

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
            from .fixtures import PROBES

            if PROBES in item.stash:
                del item.stash[PROBES]
            for key in (_FAILURE, _ALLOCATIONS, _LEAK):
                if key in item.stash and not (key is not _FAILURE and item.config.stash[SESSION].measure):
                    del item.stash[key]  # kept for the result when measuring: the protocol's end drops them


class _Measure:
    """The hooks of `--pmap` around every test.

    `--pmap` measures a whole test: from before its first fixture is set up to after its last one
    is torn down, so that memory a fixture keeps counts as the test's, as memory its call keeps
    does. The readings are the outermost hooks (`tryfirst` wrappers), so that no other plugin's
    work around the test falls inside them."""

    def __init__(self, state: Session, own: bool) -> None:
        self.state = state
        self.confirming = state.gate.judged is not None
        """True when a baseline judges the tests: `_Confirm` records each result, after confirming it."""
        self.own = own
        """True when some test has a budget, a tolerance, a trace or a leak hunt, which its result carries."""
        self.begun: Optional[tuple[pytest.Item, Start]] = None
        """The test running, and the reading before its setup: the boundary, the heap's in-use
        bytes, why the peak was not reset ("" when it was). Kept here, not in the test's stash: one
        test runs at a time, and this is read twice a test."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        state = self.state
        if not state.repeating:
            reader = state.reader
            if reader is None:
                reader = state.reader = BoundaryReader()
            self.begun = (item, begin(reader))
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            state, begun = self.state, self.begun
            if begun is not None and begun[0] is item and state.reader is not None and not state.repeating:
                self.begun = None
                measured = since(state.reader, begun[1], lambda: ignore_rule(item.config))
                if self.own:
                    measured["tolerance"] = item.stash.get(_TOLERANCE, "")
                    measured["budget"], measured["failure"] = item.stash.get(_BROKEN, ((), ""))
                    measured["trace"] = item.stash.get(_ALLOCATIONS, None)
                    measured["leak"] = item.stash.get(_LEAK, None)
                    for key in (_ALLOCATIONS, _LEAK):
                        if key in item.stash:
                            del item.stash[key]
                result = MemoryResult(item.nodeid, **measured)  # type: ignore[arg-type]
                if state.junit:  # before the teardown's report, which carries them into the XML
                    item.user_properties.extend(_properties(result))
                if self.confirming:  # `_Confirm` records it once the whole test has run
                    item.stash[_MEASURED] = result
                else:
                    state.results.append(result)
                    if self.own and _BROKEN in item.stash:  # nothing of a test outlives it
                        del item.stash[_BROKEN]


class _Confirm:
    """The hooks that confirm a suspect against the baseline: registered when there is one."""

    def __init__(self, state: Session) -> None:
        self.state = state

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield  # as every other plugin left it (a broken budget fails a passed call)
        if not report.passed and not self.state.repeating:
            item.stash[_NOT_PASSED] = True
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> Generator[None, object, object]:
        done = yield
        state = self.state
        result = item.stash.get(_MEASURED, None)
        if result is None or state.repeating:
            return done
        del item.stash[_MEASURED]
        try:
            from .confirm import confirm

            state.repeating = True
            passed = not item.stash.get(_NOT_PASSED, False)
            repeats = confirm(item, nextitem, state, result, passed)
            if repeats:
                result = replace(result, **repeats)
        finally:  # Ctrl-C during a repeat stops the session, with this test's first run measured
            state.repeating = False
            if _BROKEN in item.stash:  # nothing of a test outlives it
                del item.stash[_BROKEN]
            if _NOT_PASSED in item.stash:
                del item.stash[_NOT_PASSED]
            state.results.append(result)
        return done


class _Calls:
    """The hook around the call of a test with a budget (which covers the call alone, as it always
    has), a leak hunt or tracemalloc: registered when some test has one."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        state = item.config.stash[SESSION]
        budget = item.stash.get(_BUDGET, None)
        traced = item.stash.get(_TRACE, state.trace)
        fixtures = not FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
        hunt_calls = item.stash.get(_LEAKS, 0)
        if state.unavailable or state.repeating or not (budget or hunt_calls or (traced and (state.measure or fixtures))):
            return (yield)
        from .._measure.budget import check, report_text
        from .._measure.probe import Probe
        from .._measure.trace import DEFAULT_DEPTH, Tracer
        from .._measure.treeprobe import TreeProbe
        from ..warnings import PmapWarning

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
        from ..warnings import PmapWarning
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


_MEASURED = pytest.StashKey[MemoryResult]()
"""A test's growth from before its setup to after its teardown, until `_Confirm` records it."""
_NOT_PASSED = pytest.StashKey[bool]()
"""Some phase of the test did not pass: it is not run again to confirm anything."""
_BROKEN = pytest.StashKey[tuple[tuple[str, ...], str]]()
"""The broken limits of the test's budget, as report lines, and the failure's report."""


def _growth_of(violation: Violation) -> tuple[Optional[int], str]:
    """How much the memory behind a broken limit grew during the call, and what to call it: what
    tracemalloc's share is a share of."""
    from .._engine.metrics import METRICS

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
