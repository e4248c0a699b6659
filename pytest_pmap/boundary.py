"""Cheap readings of the calling process at test boundaries, for `--pmap`'s table of every test.

A reading costs one read of `/proc/self/status` (the kernel's own counters, a few µs). The
expensive files are read only when those counters say they can have changed since they were last
read: `smaps_rollup` (a walk of every page table) when the RSS or swap counters moved, `maps` when
the address-space counters (VmSize, VmData, VmStk, VmExe, VmLib) moved. A test that changes nothing
costs two status reads and a peak reset.

On its first reading the reader fixes glibc's mmap threshold at its documented default (128 KiB)
and its trim threshold at 1 MiB (`mallopt`). glibc otherwise raises both after a large block is
freed (up to 32 MiB), and then keeps freed heap for reuse: a leak that lands in heap an earlier
test freed asks the kernel for nothing and would not show. With the thresholds fixed, every block
of 128 KiB or more is its own mapping, and free heap beyond 1 MiB at the top is handed back.
(CPython's small-object allocator keeps free pools and one empty arena, which nothing can release;
the gate allows for that, see gate.py.) Without glibc, nothing is changed.

When the only change since the last reading is anonymous memory newly faulted in (RssAnon grew by
less than a huge page, nothing else moved), smaps_rollup is not read again: such pages are private
and dirty, so Pss, Private_Dirty and USS grow by exactly that much. That is what pytest itself does
between most tests, and it halves the cost of `--pmap`. At most `CARRY_LIMIT` readings in a row
are carried forward like this.

What this cannot see: a change that leaves every counter as it was — one mapping swapped for
another of the same size and kind, or pages that become shared with a forked child and private
again within the test. Budgets (`@pytest.mark.pmap`) always read everything.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import _smaps
from ._procfs import ProcFS, default_procfs
from .diff import MapDiff
from .errors import PmapError, ProcessGone
from .model import Mapping, Snapshot, mappings_of, mode_totals
from .render import mode
from .results import NewRegion, huge_page_size

__all__ = ["Boundary", "BoundaryReader", "growth"]

_STATUS = re.compile(rb"^(VmSize|VmData|VmStk|VmExe|VmLib|VmHWM|VmRSS|RssAnon|RssFile|RssShmem|VmSwap):\s*(\d+) kB$", re.M)
_ROLLUP = re.compile(rb"^(Pss|Private_Clean|Private_Dirty|Anonymous|AnonHugePages):\s*(\d+) kB$", re.M)
_RSS_KEYS = ("RssAnon", "RssFile", "RssShmem", "VmSwap")
_MAP_KEYS = ("VmSize", "VmData", "VmStk", "VmExe", "VmLib")


@dataclass(frozen=True)
class Boundary:
    """The calling process at one boundary."""

    status: dict[str, int]
    """Status counters in bytes (VmRSS, RssAnon, VmHWM, ...)."""
    rollup: dict[str, int]
    """Pss, Private_Clean, Private_Dirty, Anonymous and AnonHugePages in bytes, from the latest
    smaps_rollup that applies (read, or carried forward over anonymous faults)."""
    maps: Snapshot
    """The latest maps that apply (maps only: no per-mapping fields)."""


@dataclass
class BoundaryReader:
    """Readings of the calling process that re-read `maps` and `smaps_rollup` only when needed."""

    procfs: ProcFS = field(default_factory=default_procfs)
    pid: int = field(default_factory=os.getpid)
    _last: Optional[Boundary] = None
    _readers: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    _clear_refs: Optional[Callable[[bytes], None]] = None
    _carried: int = 0
    """Readings since smaps_rollup was last read for real."""
    fix_malloc: bool = True
    """Fix glibc's mmap and trim thresholds before the first reading."""
    totals_from: str = "smaps_rollup"
    """Where Pss, USS and the rest come from: `smaps_rollup`, or `smaps` (summed) on kernels without it."""

    def _read(self, name: str) -> bytes:
        read = self._readers.get(name)
        if read is None:
            read = self._readers[name] = self.procfs.reader(self.pid, name)
        return read()

    def reset_peak(self) -> str:
        """Reset VmHWM to the current RSS; why not, when the kernel refuses ("" when done)."""
        try:
            if self._clear_refs is None:
                self._clear_refs = self.procfs.writer(self.pid, "clear_refs")
            self._clear_refs(b"5")
        except PmapError as exc:
            return f"peak RSS could not be reset ({exc})"
        return ""

    def _rollup(self) -> dict[str, int]:
        """The rollup fields in bytes: from smaps_rollup, or summed over smaps where the kernel has
        no smaps_rollup (before Linux 4.14, gVisor), which `totals_from` then says."""
        text = None
        if self.totals_from == "smaps_rollup":
            try:
                text = self._read("smaps_rollup")
            except ProcessGone:
                if os.path.exists(self.procfs.path(self.pid, "smaps_rollup")):
                    raise
                self.totals_from = "smaps"
        if text is None:
            text = self.procfs.read(self.pid, "smaps")
        sums: dict[str, int] = {}
        for key, value in _ROLLUP.findall(text):
            sums[key.decode()] = sums.get(key.decode(), 0) + (int(value) << 10)
        return sums

    def read(self) -> Boundary:
        """The process now."""
        if self.fix_malloc:
            self.fix_malloc = False
            fix_malloc_thresholds()
        status = {k.decode(): int(v) << 10 for k, v in _STATUS.findall(self._read("status"))}
        last = self._last
        if last is not None and all(status.get(k) == last.status.get(k) for k in _RSS_KEYS):
            rollup = last.rollup
        elif last is not None and self._carried < CARRY_LIMIT and (faulted := _anon_faults(last, status)):
            rollup = {**last.rollup}
            for key in ("Pss", "Private_Dirty", "Anonymous"):
                if key in rollup:
                    rollup[key] += faulted
            self._carried += 1
        else:
            self._carried = 0
            rollup = self._rollup()
        if last is not None and all(status.get(k) == last.status.get(k) for k in _MAP_KEYS):
            maps = last.maps
        else:
            maps = Snapshot(pid=self.pid, mappings=mappings_of(_smaps.locate_maps(self.procfs.read(self.pid, "maps"))),
                            detail=False)
        self._last = Boundary(status, rollup, maps)
        return self._last


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


CARRY_LIMIT = 8
"""Readings in a row that may carry smaps_rollup forward before it is read again, which bounds what
a change the counters cannot see (pages shared with a child, say) can add up to."""
HUGE_PAGE = huge_page_size()
"""A transparent huge page (from sysfs): a fault of one changes AnonHugePages too, so it is read, not
carried forward."""

MMAP_THRESHOLD = 128 * 1024
"""Blocks this large get a mapping of their own (glibc's default M_MMAP_THRESHOLD)."""
TRIM_THRESHOLD = 1024 * 1024
"""Free heap at the top beyond this goes back to the kernel. glibc's default is 128 KiB; pytest's
own work between tests moves the top of the heap by more than that, and trimming it at every test
doubled the cost of `--pmap` (brk calls: 1,541 -> 218 for 2,000 tests)."""


def fix_malloc_thresholds() -> bool:
    """Fix glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, which stops glibc from raising them as it
    goes; False where there is no glibc."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_trim_threshold, TRIM_THRESHOLD)) and bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD))


def growth(before: Boundary, after: Boundary, ignore: Optional[Callable[[Mapping], bool]] = None) -> dict[str, object]:
    """Each metric's growth from `before` to `after`, the peak's rise, the change in huge pages and
    the new mappings: the fields of a `MemoryResult`."""
    def status(name: str) -> Optional[int]:
        a, b = after.status.get(name), before.status.get(name)
        return None if a is None or b is None else a - b

    def rollup(*names: str) -> Optional[int]:
        if not all(n in after.rollup and n in before.rollup for n in names):
            return None
        return sum(after.rollup[n] - before.rollup[n] for n in names)

    if after.maps is before.maps:
        map_growth = (0, 0, 0)
        new: tuple[NewRegion, ...] = ()
    else:
        b, a = mode_totals(before.maps.mappings), mode_totals(after.maps.mappings)
        map_growth = (a[0] - b[0], a[1] - b[1], a[2] - b[2])
        new = tuple(
            NewRegion(c.start, int(c.new), mode(c.mapping.perms), c.mapping.name.strip())
            for c in MapDiff.between(before.maps, after.maps, ignore).new_mappings()
        )
    hwm, start = after.status.get("VmHWM"), before.status.get("VmRSS")
    return {
        "growth": {
            "mapped": map_growth[0],
            "writeable_private": map_growth[1],
            "shared": map_growth[2],
            "rss": status("VmRSS"),
            "pss": rollup("Pss"),
            "uss": rollup("Private_Clean", "Private_Dirty"),
            "private_dirty": rollup("Private_Dirty"),
            "anonymous": status("RssAnon"),
            "swap": status("VmSwap"),
        },
        "peak_growth": None if hwm is None or start is None else hwm - start,
        "huge_pages": rollup("AnonHugePages"),
        "new_regions": new,
    }
