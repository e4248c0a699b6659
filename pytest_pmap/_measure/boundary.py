"""Cheap readings of the calling process at test boundaries, for `--pmap`'s table of every test.

A reading costs one read of `/proc/self/status` (the kernel's own counters, a few µs). The
expensive files are read only when those counters say they can have changed since they were last
read: `smaps_rollup` (a walk of every page table) when the RSS or swap counters moved, `maps` when
the address-space counters (VmSize, VmData, VmStk, VmExe, VmLib) moved. A test that changes nothing
costs two status reads and a peak reset.

Every metric is what the same name means everywhere (`metrics.METRIC_DESCRIPTIONS`): rss, pss, uss,
private_dirty, anonymous and swap are smaps_rollup's sums (smaps' on kernels without it), never the
status counters, which only say when to read it again.

When the only change since the last reading is anonymous memory newly faulted in (RssAnon grew by
less than a huge page, nothing else moved), smaps_rollup is not read again: such pages are private
and dirty, so Rss, Pss, Private_Dirty, Anonymous and USS grow by exactly that much. That is what
pytest itself does between most tests, and it halves the cost of `--pmap`. At most `CARRY_LIMIT`
readings in a row are carried forward like this, and more only while a real reading would take
more than 1/`ROLLUP_SHARE` of the time since the last one: smaps_rollup walks every page table, so
its cost grows with the process, and a suite of 10,000 tests would otherwise pay more per test
than one of 2,000. So reading it stays a fixed share of the run's time, however long the suite.

The allocator is left as it is: what the code under test allocates, and how glibc serves it, is
the same with and without `--pmap`.

What this cannot see: a change that leaves every counter as it was — one mapping swapped for
another of the same size and kind, or pages that become shared with a forked child and private
again within the test. Such a change shows at the next real reading of smaps_rollup (after
`CARRY_LIMIT` readings, or `ROLLUP_SHARE` times the cost of one, whichever is later), in the test
that reading ends. Budgets (`@pytest.mark.pmap`) always read everything.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

from .._engine.acquire import PeakReset, has_rollup
from .._engine.diff import MapDiff
from .._engine.mapping import Mapping, mappings_of
from .._engine.parse.locate import locate_maps
from .._engine.parse.status import kb_lines, parse_stat, status_sizes
from .._engine.procfs import ProcFS, default_procfs
from .._engine.render.names import Names
from .._engine.render.text import mode
from .._engine.snapshot import Snapshot
from .._engine.system import huge_page_size
from .._engine.totals import mode_totals
from .heap import heap_in_use
from .result import NewRegion

__all__ = ["Boundary", "BoundaryReader", "Start", "begin", "growth", "since"]

_ROLLUP = re.compile(rb"^(Rss|Pss|Private_Clean|Private_Dirty|Anonymous|AnonHugePages|Swap):\s*(\d+) kB$", re.M)
#: The rollup fields a page of anonymous memory newly faulted in adds to.
_FAULTED = ("Rss", "Pss", "Private_Dirty", "Anonymous")
_RSS_KEYS = ("RssAnon", "RssFile", "RssShmem", "VmSwap")
"""The counters that move with the resident set (smaps_rollup is read again when they do); maps is
read again when VmSize, VmData, VmStk, VmExe or VmLib moves."""


@dataclass(frozen=True)
class Boundary:
    """The calling process at one boundary."""

    status: dict[str, int]
    """Status counters in bytes (VmRSS, RssAnon, VmHWM, ...)."""
    rollup: dict[str, int]
    """Rss, Pss, Private_Clean, Private_Dirty, Anonymous, AnonHugePages and Swap in bytes, from the
    latest smaps_rollup that applies (read, or carried forward over anonymous faults)."""
    maps: Maps
    """The latest maps that apply, as its lines."""


@dataclass(frozen=True)
class Maps:
    """The calling process's maps file at one boundary: its lines, parsed only where two readings
    differ (a test that maps memory in a process of thousands of mappings parses one or two)."""

    pid: int
    lines: frozenset[bytes]
    """Every line of maps, without its newline."""
    names: Names
    """pmap's names for the process's mappings."""

    def snapshot(self, lines: Optional[Iterable[bytes]] = None) -> Snapshot:
        """These maps (or only the given lines of them) as a maps-only snapshot, in address order."""
        chosen = sorted(self.lines if lines is None else lines, key=_start)
        mappings = mappings_of(locate_maps(b"".join(line + b"\n" for line in chosen)), self.names)
        return Snapshot(pid=self.pid, mappings=mappings, detail=False)


def _start(line: bytes) -> int:
    return int(line[: line.find(b"-")], 16)


class BoundaryReader:
    """Readings of the calling process that re-read `maps` and `smaps_rollup` only when needed."""

    def __init__(self, procfs: Optional[ProcFS] = None, pid: Optional[int] = None) -> None:
        self.procfs = procfs or default_procfs()
        self.pid = os.getpid() if pid is None else pid
        self.reset_peak = PeakReset(self.procfs, self.pid)
        """Reset VmHWM to the current RSS; returns why not, when the kernel refuses ("" when done)."""
        self.totals_from = "smaps_rollup" if has_rollup(self.procfs, self.pid) else "smaps"
        """Where rss, pss, uss and the rest come from: `smaps_rollup`, or `smaps` (summed) on kernels without it."""
        self._last: Optional[Boundary] = None
        self._readers: dict[str, Callable[[], bytes]] = {}
        self._status: Optional[Callable[[], bytes]] = None
        """Reads status, through a descriptor kept open (twice a test: the one read every reading makes)."""
        self._carried = 0
        """Readings since smaps_rollup was last read for real."""
        self._names: Optional[Names] = None
        self._counters = b""
        """The kB lines of status at the last reading."""
        self._rollup_at = 0.0
        self._rollup_cost = 0.0
        """When smaps_rollup was last read for real (`time.perf_counter()`), and how long that took."""

    def _read(self, name: str) -> bytes:
        read = self._readers.get(name)
        if read is None:
            read = self._readers[name] = self.procfs.reader(self.pid, name)
        return read()

    def _rollup(self) -> dict[str, int]:
        """The rollup fields in bytes: from smaps_rollup, or summed over smaps where the kernel has none."""
        if self.totals_from == "smaps_rollup":
            text = self._read("smaps_rollup")
        else:
            text = self.procfs.read(self.pid, "smaps")
        sums: dict[str, int] = {}
        for key, value in _ROLLUP.findall(text):
            sums[key.decode()] = sums.get(key.decode(), 0) + (int(value) << 10)
        return sums

    def _maps(self) -> Maps:
        if self._names is None:  # pmap's names need the stack's address, which stays put
            self._names = Names(parse_stat(self.procfs.read(self.pid, "stat"), self.pid).start_stack)
        lines = frozenset(self.procfs.read(self.pid, "maps").split(b"\n"))
        return Maps(self.pid, lines - {b""}, self._names)

    def _may_carry(self) -> bool:
        """True while smaps_rollup may be carried forward once more (see the module's docstring)."""
        return self._carried < CARRY_LIMIT or time.perf_counter() - self._rollup_at < ROLLUP_SHARE * self._rollup_cost

    def read(self) -> Boundary:
        """The process now."""
        status_file = self._status
        if status_file is None:
            status_file = self._status = self.procfs.reader(self.pid, "status")
        counters = kb_lines(status_file())
        last = self._last
        if last is not None and counters == self._counters:  # nothing moved since the last reading
            return last
        self._counters = counters
        status = status_sizes(counters)
        if last is None:
            rollup = self._real_rollup()
            maps = self._maps()
        else:
            now, then = status.get, last.status.get
            if (now("RssAnon") == then("RssAnon") and now("RssFile") == then("RssFile")
                    and now("RssShmem") == then("RssShmem") and now("VmSwap") == then("VmSwap")):
                rollup = last.rollup
            elif self._may_carry() and (faulted := _anon_faults(last, status)):
                rollup = last.rollup.copy()
                for key in _FAULTED:
                    if key in rollup:
                        rollup[key] += faulted
                self._carried += 1
            else:
                rollup = self._real_rollup()
            if (now("VmSize") == then("VmSize") and now("VmData") == then("VmData") and now("VmStk") == then("VmStk")
                    and now("VmExe") == then("VmExe") and now("VmLib") == then("VmLib")):
                maps = last.maps
            else:
                maps = self._maps()
        self._last = boundary = Boundary(status, rollup, maps)
        return boundary

    def _real_rollup(self) -> dict[str, int]:
        """smaps_rollup read for real, timed (see `_may_carry`)."""
        self._carried = 0
        started = time.perf_counter()
        rollup = self._rollup()
        self._rollup_at = time.perf_counter()
        self._rollup_cost = self._rollup_at - started
        return rollup


def _anon_faults(last: Boundary, status: dict[str, int]) -> int:
    """Bytes of anonymous memory faulted in since `last`'s smaps_rollup when that is all that
    changed (RssAnon is above the rollup's Anonymous by less than a huge page; RssFile, RssShmem and
    VmSwap as they were); else 0. Measured against the rollup's own Anonymous, not the status read
    beside it, because a page can be faulted in between the two reads."""
    anonymous = last.rollup.get("Anonymous")
    if anonymous is None or any(status.get(k) != last.status.get(k) for k in _RSS_KEYS[1:]):
        return 0
    grown = status.get("RssAnon", 0) - anonymous
    return grown if 0 < grown < HUGE_PAGE else 0


ROLLUP_SHARE = 50
"""smaps_rollup is read for real at most once per this many times its own cost (2% of the run's
time) once `CARRY_LIMIT` readings have been carried forward."""
CARRY_LIMIT = 8
"""Readings in a row that may carry smaps_rollup forward before it is read again, which bounds what
a change the counters cannot see (pages shared with a child, say) can add up to."""
HUGE_PAGE = huge_page_size()
"""A transparent huge page (from sysfs): a fault of one changes AnonHugePages too, so it is read, not
carried forward."""

def growth(before: Boundary, after: Boundary, ignore: Optional[Callable[[Mapping], bool]] = None) -> dict[str, object]:
    """Each metric's growth from `before` to `after`, the peak's rise, the change in huge pages and
    the new mappings: the fields of a `MemoryResult`."""
    now, then = after.rollup, before.rollup
    hwm, start = after.status.get("VmHWM"), before.status.get("VmRSS")
    peak = None if hwm is None or start is None else hwm - start
    if now is then and after.maps is before.maps:
        # Most tests: the rollup and the maps read (or carried forward) at the start still apply, so
        # every metric the rollup has grew by 0. Written out, as this runs after every test.
        return {
            "growth": {
                "mapped": 0,
                "writeable_private": 0,
                "shared": 0,
                "rss": 0 if "Rss" in now else None,
                "pss": 0 if "Pss" in now else None,
                "uss": 0 if "Private_Clean" in now and "Private_Dirty" in now else None,
                "private_dirty": 0 if "Private_Dirty" in now else None,
                "anonymous": 0 if "Anonymous" in now else None,
                "swap": 0 if "Swap" in now else None,
            },
            "peak_growth": peak,
            "huge_pages": 0 if "AnonHugePages" in now else None,
            "new_regions": (),
        }
    if now is then:
        moved = dict.fromkeys(now, 0)
    else:
        moved = {k: v - then[k] for k, v in now.items() if k in then}
    uss = moved["Private_Clean"] + moved["Private_Dirty"] if "Private_Clean" in moved and "Private_Dirty" in moved else None
    if after.maps is before.maps:
        map_growth = (0, 0, 0)
        new: tuple[NewRegion, ...] = ()
    else:
        # Only the mappings that differ: a line of maps the same before and after groups with
        # nothing else (the mappings of one side are disjoint) and adds nothing, and the totals are
        # sums over mappings. A test that maps 1 MiB in a process of 500 mappings compares two.
        old, young = before.maps, after.maps
        gone, added = old.snapshot(old.lines - young.lines), young.snapshot(young.lines - old.lines)
        b, a = mode_totals(gone.mappings), mode_totals(added.mappings)
        map_growth = (a[0] - b[0], a[1] - b[1], a[2] - b[2])
        new = tuple(
            NewRegion(c.start, int(c.new), mode(c.mapping.perms), c.mapping.name.strip())
            for c in MapDiff.between(gone, added, ignore).new_mappings()
        )
    return {
        "growth": {
            "mapped": map_growth[0],
            "writeable_private": map_growth[1],
            "shared": map_growth[2],
            "rss": moved.get("Rss"),
            "pss": moved.get("Pss"),
            "uss": uss,
            "private_dirty": moved.get("Private_Dirty"),
            "anonymous": moved.get("Anonymous"),
            "swap": moved.get("Swap"),
        },
        "peak_growth": peak,
        "huge_pages": moved.get("AnonHugePages"),
        "new_regions": new,
    }


class Start(NamedTuple):
    """The reading before a test (or a repeat of one): the boundary, glibc's in-use bytes, and
    why the peak could not be reset ("" when it was)."""

    boundary: Boundary
    heap: Optional[int]
    peak_note: str


def begin(reader: BoundaryReader) -> Start:
    """Reset the peak and read the process; glibc's count last, so the reading is not counted."""
    note = reader.reset_peak()
    boundary = reader.read()
    return Start(boundary, heap_in_use(), note)


def since(reader: BoundaryReader, start: Start,
          ignore: Callable[[], Optional[Callable[[Mapping], bool]]]) -> dict[str, object]:
    """The fields of a `MemoryResult` from `start` to now: `growth()` with the heap's growth
    (`growth["heap"]`) and the peak unknown where it could not be reset. glibc's count is read
    first, for the same reason; `ignore()` gives the ignore rule, asked for only when maps moved."""
    heap = heap_in_use()
    end = reader.read()
    measured = growth(start.boundary, end, None if end.maps is start.boundary.maps else ignore())
    moved = measured["growth"]
    assert isinstance(moved, dict)
    moved["heap"] = None if heap is None or start.heap is None else heap - start.heap
    if start.peak_note:
        measured["peak_growth"] = None
    return measured
