"""`--pmap`'s cheap readings of the test process: what is read again, and what is carried forward."""
from __future__ import annotations

import os
import re

import pytest

from pytest_pmap import KiB, MiB, ProcFS
from pytest_pmap import Snapshot
from pytest_pmap.boundary import Boundary, BoundaryReader, _anon_faults

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
    reader.read()
    carried = checked = 0
    for i in range(80):
        keep.append(b"x" * (16 * KiB * (i % 6 + 1)))  # new anonymous pages, nothing else
        reading = reader.read()
        carried += reader._carried > 0
        # The kernel's rollup, taken while the counters stood still; our own reads between the
        # reading and this may fault in pages, which the counters show and we account for.
        before = _numbers(status(), "RssAnon|RssFile|RssShmem|VmSwap")
        kernel = _numbers(rollup(), "Pss|Private_Dirty")
        if _numbers(status(), "RssAnon|RssFile|RssShmem|VmSwap") != before:
            continue
        if any(before[k] != reading.status[k] for k in ("RssFile", "RssShmem", "VmSwap")):
            continue
        faulted_since = before["RssAnon"] - reading.rollup["Anonymous"]
        assert kernel["Private_Dirty"] - reading.rollup["Private_Dirty"] == faulted_since, (i, reader._carried)
        assert abs(kernel["Pss"] - reading.rollup["Pss"] - faulted_since) <= 16 * KiB, (i, reader._carried)
        checked += 1
    assert carried >= 20, "the carried-forward path was not exercised"
    assert checked >= 40, f"only {checked} readings could be checked"
