"""The gate's confirmation, as the tests run: a test past its allowance over the baseline is run
again in place (`--pmap-confirm N` times) and the growth of each repeat is kept with its result.
Whether the repeats confirm it is decided with the rest of the comparison, at the end
(`_gate/compare.py`), from what the results hold, so that `pytest-pmap compare` decides the same."""

from __future__ import annotations

from typing import Any, Callable, Optional

import pytest

from .._engine.mapping import Mapping
from .._gate.compare import Tolerance, suspect
from .._measure.boundary import Boundary, growth
from .._measure.heap import heap_in_use
from .._measure.result import MemoryResult
from .repeat import run_again
from .state import Session

__all__ = ["confirm"]


def confirm(item: pytest.Item, state: Session, now: MemoryResult,
            ignore: Optional[Callable[[Mapping], bool]]) -> dict[str, Any]:
    """The fields to add to a passed test's result: its repeats when it is a suspect, else none."""
    gate, reader = state.gate, state.reader
    then = gate.judged.get(item.nodeid) if gate.judged is not None else None
    if then is None or reader is None or gate.confirm <= 0 or now.tolerance == "off":
        return {}
    tolerance = Tolerance.parse(now.tolerance, item.nodeid) if now.tolerance else gate.tolerance or Tolerance()
    if not suspect(then, now, gate.metric, tolerance):
        return {}

    def before() -> tuple[Boundary, Optional[int]]:
        boundary = reader.read()
        return boundary, heap_in_use()  # last: the reading itself is not counted as the call's

    def after() -> tuple[Boundary, Optional[int]]:
        heap = heap_in_use()  # first, for the same reason
        return reader.read(), heap

    runs, stopped = run_again(item, gate.confirm, before, after)
    repeats = []
    for (before, heap_before), (after, heap_after) in runs:
        moved: dict[str, Optional[int]] = growth(before, after, ignore)["growth"]  # type: ignore[assignment]
        moved["heap"] = None if heap_before is None or heap_after is None else heap_after - heap_before
        repeats.append(moved)
    return {"repeats": tuple(repeats), "repeats_stopped": stopped}
