"""`--pmap`'s cheap readings of the test process: what is read again, and what is carried forward."""
from __future__ import annotations

import os
import re
from typing import Optional

import pytest

from pytest_pmap import KiB, MiB, ProcFS, Snapshot
from pytest_pmap._measure.boundary import Boundary, BoundaryReader, _anon_faults

BASE = {"RssAnon": 10 * MiB, "RssFile": 5 * MiB, "RssShmem": 0, "VmSwap": 0}
LAST = Boundary(BASE, {"Anonymous": 10 * MiB - 4 * KiB, "Pss": 12 * MiB, "Private_Dirty": 10 * MiB},
                Snapshot(pid=1, mappings=[], detail=False))


@pytest.mark.parametrize(("change", "carried"), [
    ({"RssAnon": 10 * MiB + 12 * KiB}, 16 * KiB),          # faulted in since the rollup: carried forward
    ({"RssAnon": 10 * MiB}, 4 * KiB),                      # a page faulted between status and rollup reads
    ({"RssAnon": 12 * MiB - 8 * KiB}, 2 * MiB - 4 * KiB),  # just under a huge page
    ({"RssAnon": 12 * MiB - 4 * KiB}, 0),                  # a huge page's worth: read again
    ({"RssAnon": 10 * MiB - 4 * KiB}, 0),                  # nothing new
    ({"RssAnon": 10 * MiB - 8 * KiB}, 0),                  # freed: the pages may have been shared
    ({"RssAnon": 10 * MiB + 4 * KiB, "RssFile": 5 * MiB + 4 * KiB}, 0),
    ({"RssAnon": 10 * MiB + 4 * KiB, "VmSwap": 4 * KiB}, 0),
    ({"RssAnon": 10 * MiB + 4 * KiB, "RssShmem": 4 * KiB}, 0),
])
def test_only_anonymous_faults_are_carried_forward(change: dict[str, int], carried: int) -> None:
    assert _anon_faults(LAST, {**BASE, **change}) == carried


def _numbers(text: bytes, keys: str) -> dict[str, int]:
    return {k.decode(): int(v) << 10 for k, v in re.findall(rb"^(" + keys.encode() + rb"):\s+(\d+) kB", text, re.M)}


def test_readings_carried_forward_agree_with_the_kernel() -> None:
    reader = BoundaryReader()
    procfs = ProcFS()
    status, rollup = procfs.reader(os.getpid(), "status"), procfs.reader(os.getpid(), "smaps_rollup")
    keep = []

    def shared_pss(kernel: dict[str, int]) -> int:
        return kernel["Pss_File"] + kernel.get("Pss_Shmem", 0)

    def read() -> tuple[Boundary, Optional[int]]:
        """A reading, and when the reader read the rollup for it: the Pss of file and shmem pages then
        (None when other processes moved it while the reader read)."""
        before = shared_pss(_numbers(rollup(), "Pss_File|Pss_Shmem"))
        reading = reader.read()
        after = shared_pss(_numbers(rollup(), "Pss_File|Pss_Shmem"))
        return reading, before if before == after else None

    _, fresh = read()  # the shared Pss when the reader last read the rollup
    carried = checked = 0
    for i in range(120):
        keep.append(b"x" * (16 * KiB * (i % 6 + 1)))  # new anonymous pages, nothing else
        reading, shared = read()
        carried += reader._carried > 0
        if reader._carried == 0:
            fresh = shared
        # The kernel's rollup, taken while the counters stood still; our own reads between the
        # reading and this may fault in pages, which the counters show and we account for.
        before = _numbers(status(), "RssAnon|RssFile|RssShmem|VmSwap")
        kernel = _numbers(rollup(), "Pss|Pss_File|Pss_Shmem|Private_Dirty|Anonymous")
        if _numbers(status(), "RssAnon|RssFile|RssShmem|VmSwap") != before:
            continue
        if kernel["Anonymous"] != before["RssAnon"]:
            continue  # the kernel's counters and its page walk disagree: not a moment to compare at
        if any(before[k] != reading.status[k] for k in ("RssFile", "RssShmem", "VmSwap")) or fresh is None:
            continue
        faulted_since = before["RssAnon"] - reading.rollup["Anonymous"]
        assert kernel["Private_Dirty"] - reading.rollup["Private_Dirty"] == faulted_since, (i, reader._carried)
        # Other processes mapping or unmapping the libraries we map move our Pss of those pages
        # (tests run in parallel spawn processes all the time): only the anonymous part is ours.
        # That part moves too, by a few pages, with no fault of ours (up to 23 KiB measured under
        # load, on a fresh reading); a missing update would be off by the 16-96 KiB of each fault.
        moved = shared_pss(kernel) - fresh
        assert abs(kernel["Pss"] - reading.rollup["Pss"] - faulted_since - moved) <= 64 * KiB, (i, reader._carried, moved)
        checked += 1
    assert carried >= 20, "the carried-forward path was not exercised"
    assert checked >= 40, f"only {checked} readings could be checked"


def test_smaps_rollup_is_read_for_a_bounded_share_of_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past CARRY_LIMIT readings, smaps_rollup is carried forward while a real reading would take more
    than 1/ROLLUP_SHARE of the time since the last one: a process whose rollup is slow to read (a big
    one) is read for real far less often than every CARRY_LIMIT readings, a fast one as before."""
    from pytest_pmap._measure import boundary

    def real_reads(rollup_seconds: float, readings: int, share: int) -> int:
        monkeypatch.setattr(boundary, "ROLLUP_SHARE", share)
        reader = BoundaryReader()
        original = reader._rollup
        count = 0

        def slow_rollup() -> dict[str, int]:
            nonlocal count
            count += 1
            deadline = boundary.time.perf_counter() + rollup_seconds
            while boundary.time.perf_counter() < deadline:
                pass
            return original()

        monkeypatch.setattr(reader, "_rollup", slow_rollup)
        keep = []
        for _ in range(readings):
            keep.append(bytearray(64 * KiB))  # anonymous memory faulted in: what is carried forward
            keep[-1][::4096] = b"x" * len(keep[-1][::4096])
            reader.read()
        return count

    readings = 5 * (boundary.CARRY_LIMIT + 1)
    assert real_reads(0.0, readings, share=0) >= 4  # no share: read again after every CARRY_LIMIT carries
    assert real_reads(0.02, readings, share=50) <= 2  # 20 ms a reading: 50 x 20 ms = 1 s between them at least
