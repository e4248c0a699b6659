"""The gate's confirmation, as the tests run: a test past its allowance over the baseline is run
again, whole (`--pmap-confirm N` times: its function-scoped fixtures set up and torn down again
with its call), and the growth of each repeat is kept with its result.
Whether the repeats confirm it is decided with the rest of the comparison, at the end
(`_gate/compare.py`), from what the results hold, so that `pytest-pmap compare` decides the same."""

from __future__ import annotations

from typing import Any, Optional, cast

import pytest

from .._gate.compare import Tolerance, suspect
from .._measure.boundary import Start, begin, since
from .._measure.result import MemoryResult
from .fixtures import ignore_rule
from .repeat import run_test_again
from .state import Session

__all__ = ["confirm"]


def confirm(item: pytest.Item, nextitem: Optional[pytest.Item], state: Session, now: MemoryResult,
            passed: bool) -> dict[str, Any]:
    """The fields to add to a test's result: when it is a suspect, its repeats, or why it was not
    run again (it did not pass); else none."""
    gate, reader = state.gate, state.reader
    then = gate.judged.get(item.nodeid) if gate.judged is not None else None
    if then is None or reader is None or gate.confirm <= 0 or now.tolerance == "off":
        return {}
    if gate.metric == "peak_growth":  # a peak does not recur while the allocator keeps what it freed
        return {}
    tolerance = Tolerance.parse(now.tolerance, item.nodeid) if now.tolerance else gate.tolerance or Tolerance()
    if not suspect(then, now, gate.metric, tolerance):
        return {}
    if not passed:  # failed, skipped, xfailed: a repeat would decide nothing, and the run reports it
        return {"repeats_stopped": "it did not pass, so it was not run again"}

    def growth_since(start: Start) -> dict[str, Optional[int]]:
        measured = since(reader, start, lambda: ignore_rule(item.config))
        moved = dict(cast("dict[str, Optional[int]]", measured["growth"]))
        moved["peak"] = cast("Optional[int]", measured["peak_growth"])  # each repeat's own peak
        return moved

    repeats, stopped = run_test_again(item, nextitem, gate.confirm, lambda: begin(reader), growth_since)
    return {"repeats": tuple(repeats), "repeats_stopped": stopped}
