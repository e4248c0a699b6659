"""`--pmap-leaks`: telling a leak from a cache by what repeated calls of a test keep.

Pure: no pytest and no /proc here, only series of numbers. After a warm-up call (which fills any
cache), the call runs N more times; after each, four counters are read: the kernel's USS and
private dirty memory, glibc's in-use bytes (`heap`) and CPython's allocated blocks (`blocks`).
A leak grows call after call; a cache that filled on the warm-up stays put; noise grows now and
then. The kernel's counters cannot see a leak that lands in free heap already resident, the
allocators' counters cannot see memory mapped by other means (CPython's arenas): each sees what
the other misses, so a test leaks when any of them grows on (nearly) every call.

A suspect is never failed on its first series: it runs `escalation(n)` more calls, and leaks only
when they grow too (a cache that holds the last ten results grows for ten calls, then stops).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any, Optional

from ..size import KiB, Size, signed

__all__ = ["DEFAULT_CALLS", "FLOORS", "LeakCheck", "escalation", "judge"]

#: Measured calls after the warm-up, when not given (`--pmap-leaks-calls`, `leaks=N`).
DEFAULT_CALLS = 5
#: How much a counter must grow in one call to count as growing: above the noise of a clean
#: test's repeated calls (USS moves a page or a heap step now and then; a clean call keeps no block).
FLOORS: dict[str, int] = {"heap": 32 * KiB, "blocks": 256, "uss": 32 * KiB, "private_dirty": 32 * KiB}
#: The counters in bytes, the kernel's first: the series a leak is shown with.
BYTES = ("uss", "private_dirty", "heap")


def escalation(calls: int) -> int:
    """How many more calls a suspect runs before the verdict."""
    return 2 * calls


def _grows(series: Sequence[int], floor: int) -> bool:
    """True when the counter grew past its floor on every call, or every call but one of five or
    more (one call whose block landed in memory freed by the one before does not clear a leak)."""
    grew = sum(1 for step in series if step >= floor)
    allowed_misses = 1 if len(series) >= 5 else 0
    return bool(series) and grew >= len(series) - allowed_misses and sum(series) >= floor * len(series)


def judge(series: Mapping[str, Sequence[Optional[int]]], floors: Mapping[str, int] = FLOORS) -> list[str]:
    """The counters that grew on (nearly) every call of `series` (counter -> growth per call); a
    counter that could not be read (None anywhere) is left out. Empty: the calls kept nothing."""
    grown = []
    for name, floor in floors.items():
        steps = series.get(name)
        if not steps or any(step is None for step in steps):
            continue
        if _grows([int(step) for step in steps if step is not None], floor):
            grown.append(name)
    return grown


@dataclass(frozen=True)
class LeakCheck:
    """What `--pmap-leaks` found for one test: the verdict and the evidence, as text and numbers."""

    leaks: bool
    """True when the test's calls kept memory call after call, the extra calls of the escalation too."""
    calls: int
    """Measured calls made (after the warm-up), the escalation's included."""
    series: dict[str, tuple[int, ...]]
    """Counter (`uss`, `private_dirty`, `heap`, `blocks`) -> its growth in each measured call."""
    grown: tuple[str, ...] = ()
    """The counters that grew on every call (empty for a test that keeps nothing)."""
    first: int = 0
    """Calls in the first series; when a suspect, the rest were the escalation's."""
    escalated: bool = False
    """True when the first calls made it a suspect and more calls were run before the verdict."""
    stopped: str = ""
    """Why the calls stopped before the verdict (the call raised when run again), or ""."""
    diff: str = ""
    """The pmap diff between the first and the last measured call (for a leak)."""
    trace: str = ""
    """With --pmap-trace: the Python lines that grew from the first measured call to the last."""

    @property
    def shown(self) -> str:
        """The counter a leak is shown with: the kernel's when it grew, else the heap's, else blocks."""
        for name in (*BYTES, "blocks"):
            if name in self.grown:
                return name
        return next((name for name in BYTES if name in self.series), "blocks")

    @property
    def per_call(self) -> Optional[int]:
        """The median growth per call of the counter shown (bytes, or blocks for `blocks`)."""
        steps = self.series.get(self.shown)
        return int(median(steps)) if steps else None

    def headline(self) -> str:
        """`leaks ~1.0 MiB per call: +1028K +1024K ...` or `no leak in 5 calls`."""
        if self.stopped and not self.leaks:
            return f"leak check stopped after {self.calls} calls: {self.stopped}"
        if not self.leaks:
            after = " (grew at first, then stopped: not a leak)" if self.escalated else ""
            return f"no leak in {self.calls} calls{after}"
        name, steps, rate = self.shown, self.series.get(self.shown, ()), self.per_call or 0
        if name == "blocks":
            return f"leaks ~{rate} blocks per call: " + " ".join(f"+{s}" for s in steps)
        what = "" if name == "uss" else f" ({name})"
        return f"leaks ~{Size(rate).human()} per call{what}: " + " ".join(signed(s) for s in steps)

    def report(self) -> str:
        """The failure text of a leak: the headline, every counter's series, the diff, the lines."""
        out = [self.headline(), f"  {self.calls} measured calls after a warm-up call"
               + (f" (the first {self.first} made it a suspect; {self.calls - self.first} more confirmed it)"
                  if self.escalated else "")]
        for name, steps in self.series.items():
            text = " ".join(f"{s:+d}" if name == "blocks" else signed(s) for s in steps)
            out.append(f"  {name:>13}: {text}" + ("  <- grew every call" if name in self.grown else ""))
        if self.diff:
            out += ["", "pmap diff between the first and the last measured call:", self.diff.rstrip("\n")]
        if self.trace:
            out += ["", self.trace.rstrip("\n")]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"leaks": self.leaks, "calls": self.calls, "per_call": self.per_call, "shown": self.shown,
                "series": {k: list(v) for k, v in self.series.items()}, "grown": list(self.grown),
                "first": self.first, "escalated": self.escalated, "stopped": self.stopped}

    @classmethod
    def from_json(cls, data: Any) -> LeakCheck:
        """Rebuild from `to_json()` (without the diff and the lines, which a report keeps as text);
        raises KeyError, TypeError or ValueError on a bad shape."""
        if not isinstance(data, dict) or not isinstance(data["leaks"], bool):
            raise TypeError(f"a leak check must be an object with \"leaks\": true or false, not {data!r}")
        series = {}
        for name, steps in dict(data.get("series") or {}).items():
            if not isinstance(steps, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in steps):
                raise TypeError(f"a leak check's series {name!r} must be a list of numbers")
            series[str(name)] = tuple(steps)
        return cls(data["leaks"], int(data["calls"]), series, tuple(str(g) for g in data.get("grown") or ()),
                   int(data.get("first") or 0), bool(data.get("escalated")), str(data.get("stopped") or ""))
