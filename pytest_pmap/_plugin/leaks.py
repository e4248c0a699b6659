"""The leak hunt of `--pmap-leaks`, run after a test's first call (its warm-up): the call again
`calls` times in place (`repeat.run_again`: fixtures set up once, as pytest-repeat does), four
counters read around each, the verdict from `_measure/leaks.py`, and for a suspect the escalation
before the verdict. Imported only by a session that hunts leaks."""

from __future__ import annotations

import tracemalloc
from typing import Callable, NamedTuple, Optional

import pytest

from .._engine.mapping import Mapping
from .._measure.boundary import Boundary, BoundaryReader
from .._measure.heap import blocks, heap_in_use
from .._measure.leaks import LeakCheck, escalation, judge
from .._measure.probe import Probe
from .._measure.trace import DEFAULT_DEPTH, Tracer
from ..errors import PmapError
from .fixtures import PROBES
from .repeat import run_again
from .state import Session

__all__ = ["hunt"]

#: Rows of the pmap diff a leak's report shows.
DIFF_ROWS = 15


class _Reading(NamedTuple):
    """Numbers only: a reading kept for every call must not hold the process's map (a new one
    each time the map changes), or the readings would be the leak."""

    uss: Optional[int]
    private_dirty: Optional[int]
    heap: Optional[int]
    blocks: int
    traced: int
    """tracemalloc's own memory (0 when it is not running): taken out of the heap's growth, it is ours."""


def hunt(item: pytest.Item, state: Session, calls: int, trace: bool,
         ignore: Optional[Callable[[Mapping], bool]]) -> LeakCheck:
    """Run `item`'s call `calls` more times (and, for a suspect, `escalation(calls)` more) and judge."""
    if state.reader is None:
        state.reader = BoundaryReader()
    reader = state.reader
    probes = item.stash.get(PROBES, [])

    def before() -> _Reading:
        for probe in probes:  # the test's own `pmap.growth` is this call's, as in its first call
            probe.mark()
        uss, dirty = _private(reader.read())
        return _Reading(uss, dirty, heap_in_use(), blocks(), _traced())  # the allocators' last: closest to the call

    def after() -> _Reading:
        heap, count, traced = heap_in_use(), blocks(), _traced()
        uss, dirty = _private(reader.read())
        return _Reading(uss, dirty, heap, count, traced)

    series: dict[str, list[Optional[int]]] = {"uss": [], "private_dirty": [], "heap": [], "blocks": []}

    def add(runs: list[tuple[_Reading, _Reading]], into: dict[str, list[Optional[int]]]) -> None:
        """Each call's growth, from the level after the call before it (the first: from before it):
        what the machinery frees between calls (a `pmap` fixture's old baseline, when `mark()`
        takes a new one whose columns the call then parses) is not counted as the call's."""
        if not runs:
            return
        level = runs[0][0]
        for _, end in runs:
            ours = end.traced - level.traced
            # pages: tracemalloc's share of them cannot be told apart
            into["uss"].append(None if level.uss is None or end.uss is None else end.uss - level.uss)
            into["private_dirty"].append(None if level.private_dirty is None or end.private_dirty is None
                                         else end.private_dirty - level.private_dirty)
            into["heap"].append(None if level.heap is None or end.heap is None else end.heap - level.heap - ours)
            into["blocks"].append(end.blocks - level.blocks)
            level = end

    heap_in_use()  # loads ctypes now, not between the diff's two snapshots
    try:  # the diff's and the trace's starting point: the end of the warm-up, the start of the first measured call
        first: Optional[Probe] = Probe(None, ignore=ignore)
    except PmapError:
        first = None
    tracer = Tracer(state.trace_depth or DEFAULT_DEPTH, str(item.config.rootpath)) if trace else None
    if tracer is not None:
        tracer.start()
    allocations = None
    try:
        runs, stopped = run_again(item, calls, before, after)
        add(runs, series)
        grown = judge(series) if not stopped else []
        escalated = bool(grown)
        if escalated:  # a suspect: more calls decide (a cache that fills up over a few calls stops)
            extra: dict[str, list[Optional[int]]] = {name: [] for name in series}
            runs, stopped = run_again(item, escalation(calls), before, after)
            add(runs, extra)
            for name, steps in extra.items():
                series[name] += steps
            grown = judge(extra) if not stopped else []
        allocations = tracer.finish() if tracer is not None else None
    finally:
        if tracer is not None:  # stopped, also when a run raised (a second finish() does nothing)
            tracer.finish()
    kept = {name: tuple(int(s) for s in steps if s is not None) for name, steps in series.items()
            if steps and all(s is not None for s in steps)}
    made = len(series["blocks"])
    diff = trace_text = ""
    if grown:
        if first is not None:
            try:
                diff = first.diff().render(limit=DIFF_ROWS)
            except PmapError as exc:
                diff = f"no diff: {exc}"
        if allocations is not None:
            total = sum(kept.get("uss", ())) or None
            trace_text = allocations.render(total, "uss growth over the measured calls")
    return LeakCheck(bool(grown), made, kept, tuple(grown), calls, escalated, stopped, diff, trace_text)


def _private(boundary: Boundary) -> tuple[Optional[int], Optional[int]]:
    """USS and private dirty memory of a reading (the whole process's: smaps_rollup's sums)."""
    rollup = boundary.rollup
    dirty = rollup.get("Private_Dirty")
    clean = rollup.get("Private_Clean")
    return (None if dirty is None or clean is None else dirty + clean), dirty


def _traced() -> int:
    return tracemalloc.get_tracemalloc_memory() if tracemalloc.is_tracing() else 0
