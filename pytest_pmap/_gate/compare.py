"""The regression gate: a run's measurements against a baseline's, with a tolerance.

Pure: no pytest and no files here. The decision, for each test (docs/gate.md has the figures):
1. A test is a suspect when its gated metric grew past the baseline's growth by more than the
   tolerance, max(relative x baseline, absolute floor). A baseline that shrank counts as 0: a
   test that used to free memory and now frees less has not leaked. Where the run also re-measured
   its suspects, a suspect is also a test whose glibc in-use bytes (`heap_growth`) grew past the
   baseline's by more than the tolerance: memory retained from free heap already resident moves
   no page the kernel counts.
2. A suspect whose call was run again in place (`--pmap-confirm N`, the plugin's default) is a
   regression only when every repeat grew past the allowance again, in either view: a retained
   leak grows on every call, while a step of an allocator (a new 1 MiB arena, a huge page, malloc's
   heap top) or a garbage collection that fell in another test does not recur. One that does not
   recur is `noise`; one whose call could not be run again is `unconfirmed`; neither fails.
3. A suspect that was not run again (confirmation off, or files from such a run) is judged on its
   one measurement, with the allowance widened where memory moves in steps that are not the test's
   doing: by one transparent huge page where huge pages moved, by one allocator step (1 MiB) where
   the test allocated `ALLOCATING` or more in the baseline.
A regression that `[tool.pytest_pmap] accept` acknowledges (`accept.py`) is `accepted`: shown with
its reason, not failed. Tests that are new or gone are reported, never failed; but a comparison that gated no test at all
(the baseline has no results, none for this run's tests, or no value of the metric) fails unless
asked not to, since it would pass whatever the tests did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from .._engine.metrics import DEFAULT_METRIC, GATE_METRICS, HEAP_METRIC
from .._measure.result import MemoryResult
from ..errors import BudgetSyntaxError
from ..size import KiB, Size, parse_size, signed
from .results import RunResults

__all__ = ["DEFAULT_METRIC", "Comparison", "Row", "Tolerance", "compare", "parse_metric", "recurs", "suspect"]

ALLOCATOR_STEP = 1024 * KiB
"""How far CPython's allocator reserve can move an allocating test's growth from run to run."""
ALLOCATING = 256 * KiB
"""A test whose RSS peak rose this far in the baseline allocates enough to move by an arena."""


def parse_metric(text: str, source: str) -> str:
    """A gate metric's name, checked; an unknown one raises `BudgetSyntaxError` naming `source`."""
    name = text.strip().lower().replace("-", "_")
    if name in GATE_METRICS:
        return name
    import difflib  # only on this error path: it costs milliseconds to import

    close = [f"{name}_growth"] if f"{name}_growth" in GATE_METRICS else difflib.get_close_matches(name, GATE_METRICS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise BudgetSyntaxError(f"{source}: unknown metric {text!r}{hint}; known metrics: {', '.join(GATE_METRICS)}")


@dataclass(frozen=True)
class Tolerance:
    """How far a test may exceed its baseline: max(relative x |baseline|, absolute)."""

    relative: float = 0.02
    """A fraction of the baseline's value (0.02 is 2%)."""
    absolute: int = 512 * KiB
    """The floor in bytes: growth metrics are often near zero, where a fraction allows nothing."""

    @classmethod
    def parse(cls, text: str, source: str) -> Tolerance:
        """`2%`, `512KiB`, or both: `2%,512KiB`. A part not given keeps its default."""
        relative, absolute = cls.relative, cls.absolute
        seen: set[str] = set()
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or len(parts) > 2 or not all(parts):
            raise BudgetSyntaxError(
                f"{source}: {text!r} is not a tolerance: give a percentage, a size or both, e.g. '2%,512KiB'"
            )
        for part in parts:
            kind = "relative" if part.endswith("%") else "absolute"
            if kind in seen:
                raise BudgetSyntaxError(f"{source}: {text!r} gives the {kind} tolerance twice")
            seen.add(kind)
            if kind == "relative":
                try:
                    relative = float(part[:-1]) / 100
                except ValueError:
                    relative = -1.0
                if not 0 <= relative <= 10:
                    raise BudgetSyntaxError(f"{source}: {part!r} is not a percentage between 0% and 1000%")
            else:
                try:
                    absolute = parse_size(part)
                except BudgetSyntaxError:
                    raise BudgetSyntaxError(
                        f"{source}: {text!r} is not a tolerance: {part!r} is neither a percentage (2%) "
                        "nor a size (512KiB)"
                    ) from None
                if absolute < 0:
                    raise BudgetSyntaxError(f"{source}: tolerance {part!r} is negative")
        return cls(relative, absolute)

    def allowed(self, baseline: int, floor: int = 0) -> int:
        """Bytes a test whose baseline is `baseline` may grow past it; at least `floor`."""
        return max(round(self.relative * abs(baseline)), self.absolute, floor)

    def __str__(self) -> str:
        return f"max({self.relative * 100:g}%, {Size.of(self.absolute).human()})"


@dataclass(frozen=True)
class Row:
    """One test in a comparison."""

    nodeid: str
    status: str
    """`regressed`, `accepted` (regressed, and acknowledged by an accept glob), `noise` (a suspect
    that did not grow again when its call was repeated), `unconfirmed` (a suspect whose call could
    not be repeated), `improved`, `ok`, `exempt` (the test's own tolerance is `off`), `new` (not in
    the baseline), `gone` (not in this run) or `unmeasured` (the metric is missing on one side)."""
    base: Optional[int]
    """The baseline's value (bytes); None when the test is new or the metric was not measured."""
    head: Optional[int]
    """This run's value (bytes)."""
    allowed: Optional[int]
    """How far past the baseline this test may go (bytes)."""
    widened: str = ""
    """Why the allowance was widened past the tolerance (`huge pages`, `allocator reserve`), or ""."""
    result: Optional[MemoryResult] = None
    """This run's measurement of the test (None when it is gone)."""
    metric: str = ""
    """The metric `base`, `head` and `allowed` are of: the gated one, or `heap_growth` when only
    the allocator's view found the test suspect ("" for the comparison's metric)."""
    evidence: str = ""
    """The repeats that decided a suspect: `confirmed 3/3: uss +1024K +1028K +1024K`, or why not."""
    reason: str = ""
    """Why an accepted regression was accepted (the accept table's reason), or ""."""

    @property
    def allowance(self) -> str:
        """`allowed` in pmap's unit, rounded down to whole KiB (`512K`), or `n/a`."""
        return "n/a" if self.allowed is None else str(Size.of(self.allowed - self.allowed % KiB))

    @property
    def delta(self) -> Optional[int]:
        """This run's value minus the baseline's."""
        return None if self.base is None or self.head is None else self.head - self.base

    @property
    def used(self) -> Optional[float]:
        """The change as a percentage of the allowance (over 100 is a regression, under -100 an
        improvement); None when either is unknown."""
        delta = self.delta
        if delta is None or not self.allowed:
            return None
        return 100 * delta / self.allowed

    @property
    def used_text(self) -> str:
        """`used` for a report: `201%`, `-12%`, `n/a`."""
        used = self.used
        return "n/a" if used is None else f"{used:.0f}%"


@dataclass(frozen=True)
class Comparison:
    """Every test of a run against a baseline, for one metric."""

    metric: str
    tolerance: Tolerance
    rows: tuple[Row, ...]
    warnings: tuple[str, ...] = ()
    """Why the comparison may mislead (the baseline was taken on another Python, kernel, ...)."""
    baseline: str = "baseline"
    """How to name the baseline in reports (its file name)."""
    ungated: str = ""
    """Why no test could be gated ("" when some test was): then the comparison fails unless
    `allow_ungated`."""
    allow_ungated: bool = False
    update: str = ""
    """The command that makes this run the baseline (`pytest --pmap-save-baseline base.json`), for
    reports to name; "" when unknown."""

    def having(self, status: str) -> list[Row]:
        """The rows with this status."""
        return [r for r in self.rows if r.status == status]

    @property
    def regressions(self) -> list[Row]:
        """The tests that regressed, the largest excess first."""
        return sorted(self.having("regressed"), key=lambda r: (r.delta or 0) - (r.allowed or 0), reverse=True)

    @property
    def passed(self) -> bool:
        """True when no test regressed, and some test was gated (or that was allowed)."""
        return not self.having("regressed") and (not self.ungated or self.allow_ungated)

    def headline(self) -> str:
        """One line: how many tests regressed, against what, with what tolerance."""
        count = len(self.having("regressed"))
        if self.ungated and not count:
            return f"no test was gated in {self.metric}: {self.ungated}"
        verdict = f"{count} test{'s' if count != 1 else ''} regressed" if count else "no test regressed"
        return f"{verdict} in {self.metric} against {self.baseline} (tolerance {self.tolerance})"

    def table(self, new_rows: int = 5) -> list[str]:
        """The comparison for a terminal: the regressions with their new mappings and what to do
        next, the accepted and improved tests by name, then the counts (`gatetext.table`)."""
        from .gatetext import table

        return table(self, new_rows)


def _allocates(result: MemoryResult) -> bool:
    """True when the test allocated enough to move by an allocator step (or its peak is unknown,
    so that cannot be ruled out)."""
    return result.peak_growth is None or result.peak_growth >= ALLOCATING


def _excess(old: Optional[int], new: Optional[int], tolerance: Tolerance) -> Optional[int]:
    """How far `new` is past its allowance over `old` (bytes; > 0 when it is a suspect), a baseline
    below 0 counting as 0; None when either is unknown."""
    if old is None or new is None:
        return None
    floor = max(old, 0)
    return new - floor - tolerance.allowed(floor)


def suspect(then: MemoryResult, now: MemoryResult, metric: str, tolerance: Tolerance) -> str:
    """The view in which `now` is past its allowance over `then` (`metric`, else `heap_growth`),
    or "": the tests the plugin runs again to confirm."""
    for view in (metric, HEAP_METRIC):
        over = _excess(then.value(view), now.value(view), tolerance)
        if over is not None and over > 0:
            return view
    return ""


def recurs(then: MemoryResult, repeat: dict[str, Optional[int]], metric: str, tolerance: Tolerance) -> bool:
    """True when one repeat of the call grew past the allowance again, in `metric` or the heap."""
    for view in (metric, HEAP_METRIC):
        over = _excess(then.value(view), repeat.get(view[: -len("_growth")]), tolerance)
        if over is not None and over > 0:
            return True
    return False


def _series(values: tuple[Optional[int], ...]) -> str:
    return " ".join(signed(v) for v in values)


def _evidence(now: MemoryResult, metric: str, confirmed: int) -> str:
    """`confirmed 3/3: uss_growth +1024K +1028K +1024K; heap_growth +1024K +1024K +1024K`."""
    views = [f"{view} {_series(now.repeated(view))}" for view in dict.fromkeys((metric, HEAP_METRIC))
             if any(v is not None for v in now.repeated(view))]
    asked = len(now.repeats)
    if confirmed == asked and not now.repeats_stopped:
        head = f"confirmed {confirmed}/{asked}"
    else:
        head = f"not confirmed: grew again in {confirmed} of {asked} repeats"
    if now.repeats_stopped:
        head += f" ({now.repeats_stopped})"
    return f"{head}: {'; '.join(views)}" if views else head


def _judge(nodeid: str, then: MemoryResult, now: MemoryResult, metric: str, tolerance: Tolerance, huge: int) -> Row:
    """One test measured in both runs: ok, improved, or a suspect and what became of it."""
    if now.tolerance == "off":
        return Row(nodeid, "exempt", then.value(metric), now.value(metric), None, result=now)
    if now.tolerance:
        tolerance = Tolerance.parse(now.tolerance, f"{nodeid}'s tolerance")
    old, value = then.value(metric), now.value(metric)
    assert old is not None and value is not None
    floor = max(old, 0)
    allowed = tolerance.allowed(floor)
    if now.repeats or now.repeats_stopped:  # the run re-measured its suspects: the repeats decide
        view = suspect(then, now, metric, tolerance)
        if not view:
            status = "improved" if old - value > tolerance.allowed(old) else "ok"
            return Row(nodeid, status, old, value, allowed, result=now)
        confirmed = sum(recurs(then, r, metric, tolerance) for r in now.repeats)
        status = ("regressed" if confirmed == len(now.repeats) and not now.repeats_stopped
                  else "unconfirmed" if now.repeats_stopped and confirmed == len(now.repeats) else "noise")
        base, head = then.value(view), now.value(view)
        shown = "" if view == metric else view
        return Row(nodeid, status, base, head, tolerance.allowed(max(base or 0, 0)), result=now, metric=shown,
                   evidence=_evidence(now, metric, confirmed))
    widened = ""
    if (now.huge_pages or then.huge_pages) and huge > allowed:
        allowed, widened = huge, "huge pages"
    elif _allocates(then):
        step = tolerance.allowed(floor, ALLOCATOR_STEP + tolerance.absolute)
        if step > allowed:
            allowed, widened = step, "allocator reserve"
    status = "regressed" if value - floor > allowed else "improved" if old - value > tolerance.allowed(old) else "ok"
    return Row(nodeid, status, old, value, allowed, widened, now)


def compare(
    base: RunResults,
    head: RunResults,
    metric: str = DEFAULT_METRIC,
    tolerance: Tolerance = Tolerance(),
    baseline: str = "baseline",
    *,
    allow_ungated: bool = False,
    accept: Optional[Mapping[str, str]] = None,
    accept_source: str = "",
    update: str = "",
) -> Comparison:
    """Every test of `head` against `base`. When no test could be gated the comparison fails
    (`passed` is false) unless `allow_ungated`. A regression matching a glob of `accept` (node-id
    glob -> reason, from `accept_source`) is accepted; `update` is the command that would make
    `head` the baseline."""
    before, after = base.by_test(), head.by_test()
    huge = head.environment.huge_page_size or base.environment.huge_page_size
    rows: list[Row] = []
    for nodeid, now in after.items():
        then = before.get(nodeid)
        value = now.value(metric)
        if then is None:
            rows.append(Row(nodeid, "new", None, value, None, result=now))
            continue
        old = then.value(metric)
        if old is None or value is None:
            rows.append(Row(nodeid, "unmeasured", old, value, None, result=now))
            continue
        rows.append(_judge(nodeid, then, now, metric, tolerance, huge))
    rows += [Row(nodeid, "gone", then.value(metric), None, None) for nodeid, then in before.items() if nodeid not in after]
    warnings = [
        f"the {baseline} was measured with {d}: expect differences that are not regressions"
        for d in [", ".join(base.environment.differences(head.environment))] if d
    ]
    warnings += [f"the {baseline}: {note}" for note in base.notes] + [f"this run: {note}" for note in head.notes]
    if accept:
        from .accept import apply_accept

        rows, accept_notes = apply_accept(rows, accept, accept_source)
        warnings += accept_notes
    if base.complete is False:
        warnings.append(f"the {baseline} is from a run that did not finish ({base.outcome()}): "
                        "tests it did not measure are new here, not gated")
    if head.complete is False:
        warnings.append(f"this run did not finish ({head.outcome()}): tests it did not measure are gone, not gated")
    ungated = _ungated(rows, base, metric, baseline)
    if ungated and allow_ungated:
        warnings.append(f"no test was gated: {ungated}")
    return Comparison(metric, tolerance, tuple(rows), tuple(warnings), baseline, ungated, allow_ungated, update)


def _ungated(rows: list[Row], base: RunResults, metric: str, baseline: str) -> str:
    """Why no test of this run was gated against the baseline, or "" when some test was (or
    neither side has any)."""
    if not rows or any(r.status in ("ok", "regressed", "improved", "noise", "unconfirmed", "accepted") for r in rows):
        return ""
    tests = sum(r.status != "gone" for r in rows)
    if not tests:
        return (f"this run measured no test (were they all skipped or deselected?), and the {baseline} "
                f"has {len(base.results)}: every one is gone")
    if not base.results:
        return f"the {baseline} has no results (was it saved from the right run?): all {tests} tests are new"
    if not any(r.status == "unmeasured" for r in rows):
        return (f"none of this run's {tests} tests is in the {baseline}, which has {len(base.results)} "
                "(node IDs are relative to the rootdir: was it saved from another folder or another suite?)")
    return f"{metric} was measured on only one side for every test this run shares with the {baseline}"
