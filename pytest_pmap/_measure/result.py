"""`MemoryResult`: what was measured of one test, as reports and results files keep it (text and
numbers, never snapshots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .._engine.metrics import GATE_METRICS
from ..size import signed

if TYPE_CHECKING:  # imported where a result file holds them: a session that only measures has neither
    from .leaks import LeakCheck
    from .trace import Allocations

__all__ = ["GATE_METRICS", "MemoryResult", "NewRegion"]

@dataclass(frozen=True)
class NewRegion:
    """One stretch of address space that was not mapped when the test started."""

    start: int
    """Lowest address."""
    size: int
    """New bytes (a region merged into an older mapping counts with its new bytes only)."""
    mode: str
    """pmap's five-letter mode (`rw---`)."""
    name: str
    """pmap's Mapping column (`[ anon ]`, `libfoo.so`)."""

    def row(self) -> str:
        """The region in pmap -x's Address, Kbytes, Mode and Mapping columns."""
        return f"{self.start:016x} {signed(self.size, unit=False):>8} {self.mode} {self.name.strip()}"


@dataclass(frozen=True)
class MemoryResult:
    """What `--pmap` measured for one test, from before its setup to after its teardown."""

    nodeid: str
    growth: dict[str, Optional[int]] = field(default_factory=dict)
    """Metric -> bytes gained during the test (negative when it shrank); None when not measured."""
    peak_growth: Optional[int] = None
    """How far the RSS peak during the test rose above the RSS at its start; None when the peak
    could not be reset."""
    huge_pages: Optional[int] = None
    """Change in transparent huge pages (AnonHugePages) during the test; None when not measured."""
    new_regions: tuple[NewRegion, ...] = ()
    """Address space new during the test, one entry per group of overlapping mappings."""
    budget: tuple[str, ...] = ()
    """The broken limits of the test's budget, as report lines."""
    failure: str = ""
    """The budget failure's report: every broken limit and the pmap-formatted diff."""
    repeats: tuple[dict[str, Optional[int]], ...] = ()
    """The growth (as in `growth`, and `peak`: how far its RSS peak rose) of each extra run of the
    test, made to confirm a suspect regression before the gate fails it; empty when it was not
    run again."""
    repeats_stopped: str = ""
    """Why fewer repeats were made than asked (`the call raised ValueError when run again`), or ""."""
    tolerance: str = ""
    """The test's own gate tolerance (marker or pyproject.toml), as written; `off` when the test is
    not gated; "" for the session's."""
    trace: Optional[Allocations] = None
    """`--pmap-trace`: the Python lines that kept most of what they allocated during the call;
    None when the call was not traced."""
    leak: Optional[LeakCheck] = None
    """`--pmap-leaks`: the verdict of the repeated calls and their growth; None when not hunted."""

    @property
    def new_mappings(self) -> int:
        """How many groups of mappings cover address space new during the test."""
        return len(self.new_regions)

    @property
    def largest_new(self) -> int:
        """Bytes of new address space in the largest of them."""
        return max((r.size for r in self.new_regions), default=0)

    def value(self, metric: str) -> Optional[int]:
        """The measurement of a gate metric (`uss_growth`, `peak_growth`, ...); None when not measured."""
        if metric == "peak_growth":
            return self.peak_growth
        return self.growth.get(metric[: -len("_growth")])

    def repeated(self, metric: str) -> tuple[Optional[int], ...]:
        """A gate metric's value in each repeat of the test (`peak_growth`: each repeat's own peak)."""
        key = metric[: -len("_growth")]
        return tuple(r.get(key) for r in self.repeats)

    def measured(self) -> dict[str, int]:
        """Every gate metric that was measured, with its value (bytes)."""
        return {name: value for name in GATE_METRICS if (value := self.value(name)) is not None}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "nodeid": self.nodeid,
            "growth": dict(self.growth),
            "peak_growth": self.peak_growth,
            "huge_pages": self.huge_pages,
            "new_mappings": [
                {"start": r.start, "size": r.size, "mode": r.mode, "name": r.name} for r in self.new_regions
            ],
            "budget": list(self.budget),
            "failure": self.failure,
            "repeats": [dict(r) for r in self.repeats],
            "repeats_stopped": self.repeats_stopped,
            "tolerance": self.tolerance,
            "trace": None if self.trace is None else self.trace.to_json(),
            "leak": None if self.leak is None else self.leak.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> MemoryResult:
        """Rebuild a result from `to_json()`; raises KeyError, TypeError or ValueError on a bad shape."""
        def size(value: object) -> Optional[int]:
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) < value < 1 << 63:
                raise TypeError(f"{value!r} is not a number of bytes")
            return value

        if not isinstance(data, dict) or not isinstance(data["nodeid"], str) or not data["nodeid"]:
            raise TypeError("a test's result must be an object with a \"nodeid\" that names it")
        regions = tuple(
            NewRegion(int(r["start"]), int(r["size"]), str(r["mode"]), str(r["name"]))
            for r in data.get("new_mappings") or ()
        )
        trace, leak = data.get("trace"), data.get("leak")
        if trace is not None:
            from .trace import Allocations

            trace = Allocations.from_json(trace)
        if leak is not None:
            from .leaks import LeakCheck

            leak = LeakCheck.from_json(leak)
        return cls(
            nodeid=data["nodeid"],
            growth={str(k): size(v) for k, v in dict(data.get("growth") or {}).items()},
            peak_growth=size(data.get("peak_growth")),
            huge_pages=size(data.get("huge_pages")),
            new_regions=regions,
            budget=tuple(str(line) for line in data.get("budget") or ()),
            failure=str(data.get("failure") or ""),
            repeats=tuple({str(k): size(v) for k, v in dict(r).items()} for r in data.get("repeats") or ()),
            repeats_stopped=str(data.get("repeats_stopped") or ""),
            tolerance=str(data.get("tolerance") or ""),
            trace=trace,
            leak=leak,
        )
