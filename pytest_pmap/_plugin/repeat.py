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
import warnings
from typing import Callable, Optional, TypeVar

import pytest

__all__ = ["repeatable", "run_again", "run_test_again"]

T = TypeVar("T")
R = TypeVar("R")


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


class _Alone:
    """A stand-in for the next test whose chain is the test's own without the test: tearing down
    towards it tears down the test's function-scoped fixtures alone, and keeps every wider scope
    set up (SetupState.teardown_exact reads nothing of the next test but its `listchain()`)."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = [*item.listchain()[:-1], self]

    def listchain(self) -> list[object]:
        return self._chain


def run_test_again(item: pytest.Item, nextitem: Optional[pytest.Item], times: int, before: Callable[[], T],
                   after: Callable[[T], R]) -> tuple[list[R], str]:
    """Run the whole test `item` (setup, call, teardown) `times` more times with pytest's own
    protocol, as pytest-rerunfailures does, reporting nothing and keeping the repeats' warnings out
    of the session's; `before()` reads before each run and `after(that reading)` after it, garbage
    collected first, and what `after` returns is kept (numbers, so that no reading outlives its
    run: one that holds the process's map would be memory the next run is charged with).

    Fixtures of wider scope are set up once for all the repeats: the repeats tear down the test's
    function-scoped fixtures alone. Where the first run tore some down (the last test of a module,
    class or session), one run that is not measured sets them up again, and they are torn down
    after the repeats as `nextitem` needs. Returns what `after` made of each measured run, and ""
    or why it stopped early: a phase did not pass, or the test called `pytest.exit()`
    (a repeat never changes the test's outcome, which its first run decided; Ctrl-C still stops
    the session)."""
    from _pytest.runner import runtestprotocol  # the protocol pytest runs every test with

    scopes = item.listchain()[:-1]
    torn = nextitem is None or nextitem.listchain()[: len(scopes)] != scopes
    alone = _Alone(item)
    readings: list[R] = []
    stopped = ""
    try:
        with warnings.catch_warnings(record=True):
            for run in range(times + torn):
                if item.session.shouldfail or item.session.shouldstop:
                    stopped = "the session is stopping"
                    break
                gc.collect()
                start = before()
                reports = runtestprotocol(item, log=False, nextitem=alone)  # type: ignore[arg-type]
                failed = next((r for r in reports if not r.passed), None)
                if failed is not None:
                    stopped = f"its {failed.when} {failed.outcome} when run again"
                    break
                gc.collect()
                if run or not torn:
                    readings.append(after(start))
                del start
    except pytest.exit.Exception:  # brought about by running it again: not the session's end
        stopped = "it called pytest.exit() when run again"
        torn = True
    if torn:  # leave the fixtures as the first run left them, for `nextitem`
        # The wider fixtures alone, as pytest's own teardown does it; not the teardown phase's
        # hooks again, which the last repeat ran (pytest's logging plugin fails a second one).
        try:
            item.session._setupstate.teardown_exact(nextitem)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a wider fixture's teardown failed, the second time it ran
            stopped = stopped or f"a fixture's teardown raised {type(exc).__name__} after the repeats"
    return readings, stopped
