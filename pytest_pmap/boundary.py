"""Cheap readings of the calling process at test boundaries, for `--pmap`'s table of every test.

A reading costs one read of `/proc/self/status` (the kernel's own counters, a few µs). The
expensive files are read only when those counters say they can have changed since they were last
read: `smaps_rollup` (a walk of every page table) when the RSS or swap counters moved, `maps` when
the address-space counters (VmSize, VmData, VmStk, VmExe, VmLib) moved. A test that changes nothing
costs two status reads and a peak reset.

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
from .errors import PmapError
from .model import Mapping, Snapshot, mappings_of, mode_totals

__all__ = ["Boundary", "BoundaryReader", "growth"]

_STATUS = re.compile(rb"^(VmSize|VmData|VmStk|VmExe|VmLib|VmHWM|VmRSS|RssAnon|RssFile|RssShmem|VmSwap):\s*(\d+) kB$", re.M)
_ROLLUP = re.compile(rb"^(Pss|Private_Clean|Private_Dirty):\s*(\d+) kB$", re.M)
_RSS_KEYS = ("RssAnon", "RssFile", "RssShmem", "VmSwap")
_MAP_KEYS = ("VmSize", "VmData", "VmStk", "VmExe", "VmLib")


@dataclass(frozen=True)
class Boundary:
    """The calling process at one boundary."""

    status: dict[str, int]
    """Status counters in bytes (VmRSS, RssAnon, VmHWM, ...)."""
    rollup: dict[str, int]
    """Pss, Private_Clean and Private_Dirty in bytes, from the latest smaps_rollup that applies."""
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

    def read(self) -> Boundary:
        """The process now."""
        status = {k.decode(): int(v) << 10 for k, v in _STATUS.findall(self._read("status"))}
        last = self._last
        if last is not None and all(status.get(k) == last.status.get(k) for k in _RSS_KEYS):
            rollup = last.rollup
        else:
            rollup = {k.decode(): int(v) << 10 for k, v in _ROLLUP.findall(self._read("smaps_rollup"))}
        if last is not None and all(status.get(k) == last.status.get(k) for k in _MAP_KEYS):
            maps = last.maps
        else:
            maps = Snapshot(pid=self.pid, mappings=mappings_of(_smaps.locate_maps(self.procfs.read(self.pid, "maps"))),
                            detail=False)
        self._last = Boundary(status, rollup, maps)
        return self._last


def growth(before: Boundary, after: Boundary, ignore: Optional[Callable[[Mapping], bool]] = None) -> dict[str, object]:
    """Each metric's growth from `before` to `after`, the peak's rise, and the new mappings."""
    def status(name: str) -> Optional[int]:
        a, b = after.status.get(name), before.status.get(name)
        return None if a is None or b is None else a - b

    def rollup(*names: str) -> Optional[int]:
        if not all(n in after.rollup and n in before.rollup for n in names):
            return None
        return sum(after.rollup[n] - before.rollup[n] for n in names)

    if after.maps is before.maps:
        map_growth = (0, 0, 0)
        new: list[int] = []
    else:
        b, a = mode_totals(before.maps.mappings), mode_totals(after.maps.mappings)
        map_growth = (a[0] - b[0], a[1] - b[1], a[2] - b[2])
        new = [int(c.new) for c in MapDiff.between(before.maps, after.maps, ignore).new_mappings()]
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
        "new_mappings": len(new),
        "largest_new": max(new, default=0),
    }
