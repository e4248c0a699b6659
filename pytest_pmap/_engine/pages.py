"""The pages a group of processes holds and no process outside it: from `/proc/PID/pagemap` (which
page frame backs each virtual page) and `/proc/kpagecount` (how many times each frame is mapped).

A frame counts when every one of its mappers is in the group: its kpagecount equals the number of
times the group maps it (copy-on-write pages after a fork, shared memory between workers). Each
frame counts once, however many of the group's processes map it. Both files need root
(CAP_SYS_ADMIN): elsewhere the kernel hides the frame numbers, and the count is None with the reason.

Only the resident part of each mapping is read: the snapshot's per-mapping Rss says which mappings
have any, so a process's reserved but untouched address space (gigabytes, for some runtimes)
costs nothing.
"""

from __future__ import annotations

import mmap
import os
import sys
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, compress
from operator import eq, sub

from ..errors import AccessDenied, NotSupported, ProcessGone
from .acquire import map_thread
from .procfs import ProcFS, task_file
from .snapshot import Snapshot

__all__ = ["PageCount", "count_unique"]

#: pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
PRESENT = 1 << 63
PFN_MASK = (1 << 55) - 1
LITTLE_ENDIAN = sys.byteorder == "little"
_WITHOUT_BIT_7 = bytes(b & 0x7F for b in range(256))
#: Entries (8 bytes each) read from pagemap per pread: 8 MiB of entries covers 4 GiB of address space.
PAGEMAP_BATCH = 1 << 20
#: Frames two kpagecount reads may be apart and still be read as one. The kernel spends 100-700 ns
#: on each frame it reports and about 2 us on a read: reading a gap of more than a few frames costs
#: more than another read.
KPAGECOUNT_GAP = 8
#: The most frames of kpagecount read at once (1 MiB of the file).
KPAGECOUNT_SPAN = 1 << 17


@dataclass(frozen=True)
class PageCount:
    """What `count_unique` found: the bytes (None when the kernel would not say) and why not, or what was left out."""

    unique: int | None
    """Bytes of resident pages the group holds and no other process maps, each counted once."""
    note: str = ""
    """Why `unique` is None, or which processes it could not count (they exited meanwhile)."""
    frames: int = 0
    """Distinct page frames the group maps (read from pagemap)."""


def _frames(data: bytes) -> array[int]:
    """The frame numbers of the present pages among these pagemap entries, in order."""
    entries = array("Q")
    if LITTLE_ENDIAN and data and min(data[7::8]) >= 0x80:  # every page present: mask in bulk, in C
        buf = bytearray(data)
        buf[7::8] = bytes(len(data) // 8)  # bits 56-63: present, swapped, file/shared, exclusive, ...
        buf[6::8] = buf[6::8].translate(_WITHOUT_BIT_7)  # bit 55: soft-dirty
        entries.frombytes(buf)
        return entries
    entries.frombytes(data)
    return array("Q", [e & PFN_MASK for e in entries if e & PRESENT])


def _frames_of(fs: ProcFS, snap: Snapshot, page: int, counts: Counter[int]) -> bool:
    """Add the frame of every resident page of `snap`'s mappings to `counts` (once per mapping of
    it); False when pagemap shows pages present but hides their frames (not CAP_SYS_ADMIN)."""
    thread = map_thread(fs, snap.pid, fs.stat(snap.pid))
    read = fs.pread(snap.pid, task_file(thread, "pagemap"))
    hidden = False
    for m in snap.mappings:
        if not m.rss:
            continue
        first, stop = m.start // page, m.end // page
        while first < stop:
            n = min(stop - first, PAGEMAP_BATCH)
            frames = _frames(read(first * 8, n * 8))
            if frames and not frames[0] and not max(frames):  # (a frame of 0 first: look at them all)
                hidden = True
            counts.update(frames)
            first += n
    return not hidden


def _windows(frames: list[int]) -> Iterator[tuple[int, int]]:
    """(first, stop) index ranges of `frames` (sorted) to read kpagecount for in one read each:
    frames at most KPAGECOUNT_GAP apart, spanning at most KPAGECOUNT_SPAN."""
    breaks = compress(range(1, len(frames)), map(KPAGECOUNT_GAP.__lt__, map(sub, frames[1:], frames)))
    first = 0
    for stop in chain(breaks, [len(frames)]):
        while first < stop:
            end = bisect_right(frames, frames[first] + KPAGECOUNT_SPAN - 1, first, stop)
            yield first, end
            first = end


def _kpagecounts(path: str, frames: list[int], counts: Counter[int]) -> int:
    """How many of `frames` (sorted) are mapped exactly `counts[frame]` times, from kpagecount."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        same = 0
        for first, stop in _windows(frames):
            low, high = frames[first], frames[stop - 1]
            data = os.pread(fd, (high - low + 1) * 8, low * 8)
            mapped = memoryview(data).cast("Q")
            if len(mapped) < high - low + 1:
                raise OSError(0, f"{path} ended at frame {low + len(mapped)}")
            window = frames[first:stop]
            # in C: kpagecount of each frame == the times the group maps it
            same += sum(map(eq, map(mapped.__getitem__, map((-low).__add__, window)), map(counts.__getitem__, window)))
        return same
    finally:
        os.close(fd)


def count_unique(fs: ProcFS, snapshots: Iterable[Snapshot]) -> PageCount:
    """The bytes of resident pages the processes of `snapshots` map and no other process does.

    Needs each mapping's Rss (snapshots taken with `detail=True`), pagemap's frame numbers and
    `/proc/kpagecount`, both root's (CAP_SYS_ADMIN); otherwise `unique` is None and `note` says why
    (use pss then). A process that exited since its snapshot is left out and named in `note`.
    """
    snapshots = list(snapshots)
    if not all(s.detail for s in snapshots):
        return PageCount(None, "unique needs each mapping's Rss: take the snapshot with detail=True")
    if any(m.rss is None for s in snapshots for m in s.mappings):
        return PageCount(None, "this kernel's smaps has no Rss lines, which unique needs; use pss")
    kpagecount = f"{fs.root}/kpagecount"
    if not os.access(kpagecount, os.R_OK):
        return PageCount(None, f"{kpagecount} is readable by root (CAP_SYS_ADMIN) only; use pss, "
                               "which shares each page among the processes that map it")
    page = mmap.PAGESIZE
    counts: Counter[int] = Counter()
    gone: list[str] = []
    for snap in snapshots:
        try:
            if not _frames_of(fs, snap, page, counts):
                return PageCount(None, f"PID {snap.pid}'s pagemap shows no page frame numbers to this user "
                                       "(it takes CAP_SYS_ADMIN); use pss")
        except ProcessGone:
            gone.append(str(snap.pid))
        except (AccessDenied, NotSupported) as exc:
            return PageCount(None, f"unique not counted: {exc}")
    frames = sorted(counts)
    try:
        same = _kpagecounts(kpagecount, frames, counts)
    except OSError as exc:
        return PageCount(None, f"reading {kpagecount} failed ({exc.strerror}); use pss")
    note = f"PID {', '.join(gone)} exited before its pages were counted" if gone else ""
    return PageCount(same * page, note, len(frames))
