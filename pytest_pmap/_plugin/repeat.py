"""Running a test again, with a reading before and after each run: how the gate confirms a
suspect before failing it (a retained leak grows on every run; an allocator's step does not
recur), and what leak hunting repeats.

Two ways: `run_test_again` runs the whole test again (its function-scoped fixtures set up and torn
down with it), which is what the gate measures; `run_again` runs its call alone, in place, with its
fixtures as they were set up (as pytest-repeat does for function scope). Garbage is collected
before each reading, so cycles a run left behind do not count.
"""

from __future__ import annotations

import gc
from typing import Callable, Optional, TypeVar

import pytest

__all__ = ["repeatable", "run_again", "run_test_again"]

T = TypeVar("T")


def repeatable(item: pytest.Item) -> str:
    """Why this test's call cannot be run again in place, or "" when it can."""
    if not isinstance(item, pytest.Function):
        return f"a {type(item).__name__} is not a test function"
    return ""


def run_again(item: pytest.Item, times: int, before: Callable[[], T], after: Callable[[], T]) -> tuple[list[tuple[T, T]], str]:
    """Run `item`'s call `times` more times; `before()` and `after()` read around each run, garbage
    collected first (two functions, so that each can read its cheapest counter closest to the
    call). Returns the (before, after) readings of each run made, and "" or why it stopped early
    (the test cannot be run again, or a run raised): a repeat's failure never changes the test's
    outcome, which its first call decided."""
    why = repeatable(item)
    if why:
        return [], why
    readings: list[tuple[T, T]] = []
    for _ in range(times):
        gc.collect()
        start = before()
        # A unittest.TestCase test (setUp and tearDown run again with it) does not raise when it
        # fails: pytest keeps its errors on the item, and a repeat's must not become the test's.
        recorded = list(item.__dict__.get("_excinfo") or ())
        try:
            item.runtest()
        except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
            raise
        except BaseException as exc:  # pytest.skip/fail are BaseExceptions too
            return readings, f"the call raised {type(exc).__name__} when run again"
        finally:
            errors = item.__dict__.get("_excinfo")
            if errors is not None and len(errors) > len(recorded):
                item.__dict__["_excinfo"] = recorded or None
        if errors is not None and len(errors) > len(recorded):
            return readings, f"the call failed when run again ({errors[len(recorded)].typename})"
        gc.collect()
        readings.append((start, after()))
    return readings, ""


def run_test_again(item: pytest.Item, nextitem: Optional[pytest.Item], times: int, before: Callable[[], T],
                   after: Callable[[], T]) -> tuple[list[tuple[T, T]], str]:
    """Run the whole test `item` (setup, call, teardown) `times` more times, as pytest-rerunfailures
    does, reporting nothing; `before()` and `after()` read around each run, garbage collected
    first. Fixtures of wider scope stay set up where `nextitem` needs them, as after the first run.
    Returns the (before, after) readings of each run made, and "" or why it stopped early (a phase
    did not pass: a repeat never changes the test's outcome, which its first run decided)."""
    from _pytest.runner import runtestprotocol  # the protocol pytest runs every test with

    readings: list[tuple[T, T]] = []
    for _ in range(times):
        if item.session.shouldfail or item.session.shouldstop:
            return readings, "the session is stopping"
        gc.collect()
        start = before()
        reports = runtestprotocol(item, log=False, nextitem=nextitem)
        failed = next((r for r in reports if not r.passed), None)
        if failed is not None:
            return readings, f"its {failed.when} {failed.outcome} when run again"
        gc.collect()
        readings.append((start, after()))
    return readings, ""
