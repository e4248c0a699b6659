"""`--pmap`'s cheap readings of the test process: what is read again, and what is carried forward."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from pytest_pmap import KiB, MiB, ProcFS
from pytest_pmap._engine.render.names import Names
from pytest_pmap._measure.boundary import Boundary, BoundaryReader, Maps, _anon_faults

BASE = {"RssAnon": 10 * MiB, "RssFile": 5 * MiB, "RssShmem": 0, "VmSwap": 0}
LAST = Boundary(BASE, {"Anonymous": 10 * MiB - 4 * KiB, "Pss": 12 * MiB, "Private_Dirty": 10 * MiB},
                Maps(1, frozenset(), Names()))


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

    def unshared_anon(kernel: dict[str, int]) -> bool:
        """True when no anonymous page of ours is shared (with a child forked by a neighbouring test
        of this worker, say): such a page's Pss moves when the other process exits, with no fault of ours."""
        return "Pss_Anon" not in kernel or kernel["Pss_Anon"] == kernel["Anonymous"]

    def read() -> tuple[Boundary, Optional[int]]:
        """A reading, and when the reader read the rollup for it: the Pss of file and shmem pages then
        (None when other processes moved it while the reader read, or shared our anonymous pages)."""
        keys = "Pss_File|Pss_Shmem|Pss_Anon|Anonymous"
        first = _numbers(rollup(), keys)
        reading = reader.read()
        then = _numbers(rollup(), keys)
        before, after = shared_pss(first), shared_pss(then)
        return reading, before if before == after and unshared_anon(first) and unshared_anon(then) else None

    _, fresh = read()  # the shared Pss when the reader last read the rollup
    carried = checked = 0
    for i in range(600):  # until enough moments could be checked: a busy machine skips many (about 34 MiB at most)
        if checked >= 40 and carried >= 20:
            break
        keep.append(b"x" * (16 * KiB * (i % 6 + 1)))  # new anonymous pages, nothing else
        read_at = reader._rollup_at
        reading, shared = read()
        carried += reader._carried > 0
        if reader._carried == 0 and reader._rollup_at != read_at:  # read for real now, not kept from before
            fresh = shared
        # The kernel's rollup, taken while the counters stood still; our own reads between the
        # reading and this may fault in pages, which the counters show and we account for.
        before = _numbers(status(), "RssAnon|RssFile|RssShmem|VmSwap")
        kernel = _numbers(rollup(), "Pss|Pss_File|Pss_Shmem|Pss_Anon|Private_Dirty|Anonymous")
        if not unshared_anon(kernel):
            continue
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


def _canned_process(root: Path, anon_kib: int) -> None:
    """The files a BoundaryReader reads, for PID 4242, with `anon_kib` KiB of anonymous memory
    (rewritten in place: the reader keeps them open)."""
    folder = root / "4242"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status").write_bytes(
        f"Name:\tx\nVmSize:\t  100000 kB\nVmHWM:\t {anon_kib + 100} kB\nVmRSS:\t {anon_kib + 100} kB\n"
        f"RssAnon:\t {anon_kib} kB\nRssFile:\t 100 kB\nRssShmem:\t 0 kB\nVmData:\t 50000 kB\nVmStk:\t 132 kB\n"
        f"VmExe:\t 4 kB\nVmLib:\t 2000 kB\nVmSwap:\t 0 kB\nThreads:\t1\n".encode())
    (folder / "smaps_rollup").write_bytes(
        f"00400000-7ffff000 ---p 00000000 00:00 0 [rollup]\nRss: {anon_kib + 100} kB\nPss: {anon_kib + 50} kB\n"
        f"Private_Clean: 0 kB\nPrivate_Dirty: {anon_kib} kB\nAnonymous: {anon_kib} kB\nSwap: 0 kB\n".encode())
    (folder / "maps").write_bytes(b"00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\n")
    (folder / "stat").write_bytes(b"4242 (x) S 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 1234 0\n")


@pytest.mark.parametrize(("share", "rollup_seconds", "expected"), [
    (0, 0.0, 5),   # no share: read again after every CARRY_LIMIT carried readings (45 readings: 5 times)
    (50, 0.02, 1),  # 20 ms a rollup: not again within 50 x 20 ms
])
def test_smaps_rollup_is_read_for_a_bounded_share_of_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: int, rollup_seconds: float, expected: int
) -> None:
    """Past CARRY_LIMIT readings carried forward, smaps_rollup is read for real only once a real
    reading would take at most 1/ROLLUP_SHARE of the time since the last one: a process whose rollup
    is slow to read (a big one) is read far less often than every CARRY_LIMIT readings."""
    from pytest_pmap._measure import boundary

    monkeypatch.setattr(boundary, "ROLLUP_SHARE", share)
    _canned_process(tmp_path, 10_000)
    reader = BoundaryReader(ProcFS(tmp_path), 4242)
    original = reader._rollup
    reads = 0

    def timed_rollup() -> dict[str, int]:
        nonlocal reads
        reads += 1
        deadline = time.perf_counter() + rollup_seconds
        while time.perf_counter() < deadline:
            pass
        return original()

    monkeypatch.setattr(reader, "_rollup", timed_rollup)
    for i in range(5 * (boundary.CARRY_LIMIT + 1)):
        _canned_process(tmp_path, 10_000 + 4 * i)  # a page of anonymous memory more at each reading
        reader.read()
    assert reads == expected


def test_growth_compares_only_the_mappings_that_changed_and_agrees_with_the_whole_diff() -> None:
    """growth() parses and diffs only the lines of maps that differ; the new regions and pmap -d's
    totals are those of a MapDiff over the whole maps, for mappings made, split by mprotect, unmapped."""
    import ctypes
    import mmap

    from pytest_pmap._engine.diff import MapDiff
    from pytest_pmap._engine.render.text import mode
    from pytest_pmap._engine.totals import mode_totals
    from pytest_pmap._measure.boundary import growth

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    reader = BoundaryReader()
    kept = [mmap.mmap(-1, 4 * MiB, flags=mmap.MAP_PRIVATE)]  # private: VmData sees its write bit go
    view = ctypes.c_char.from_buffer(kept[0])
    address = ctypes.addressof(view)
    del view  # the mapping can be closed again

    def split() -> None:  # read-only in its middle: one mapping becomes three
        assert libc.mprotect(address + MiB, MiB, mmap.PROT_READ) == 0, ctypes.get_errno()

    steps: list[Callable[[], None]] = [
        lambda: kept.append(mmap.mmap(-1, 2 * MiB, flags=mmap.MAP_PRIVATE)),  # a new mapping
        lambda: kept.append(mmap.mmap(-1, 3 * MiB, flags=mmap.MAP_SHARED)),  # a shared one
        split,
        lambda: kept.pop(1).close(),                                         # unmapped
    ]
    for step in steps:
        before = reader.read()
        step()
        after = reader.read()
        assert after.maps is not before.maps
        got = growth(before, after)
        whole_before, whole_after = before.maps.snapshot(), after.maps.snapshot()
        b, a = mode_totals(whole_before.mappings), mode_totals(whole_after.mappings)
        moved = got["growth"]
        assert (moved["mapped"], moved["writeable_private"], moved["shared"]) == (a[0] - b[0], a[1] - b[1], a[2] - b[2])  # type: ignore[index]
        whole = [(c.start, int(c.new), mode(c.mapping.perms), c.mapping.name.strip())
                 for c in MapDiff.between(whole_before, whole_after).new_mappings()]
        assert [(r.start, r.size, r.mode, r.name) for r in got["new_regions"]] == whole  # type: ignore[attr-defined]
    for m in kept:
        m.close()


@pytest.mark.parametrize("rollup", [
    {"Rss": 9 * MiB, "Pss": 8 * MiB, "Private_Clean": MiB, "Private_Dirty": 6 * MiB, "Anonymous": 6 * MiB,
     "AnonHugePages": 0, "Swap": 0},
    {"Rss": 9 * MiB, "Pss": 8 * MiB, "Private_Dirty": 6 * MiB},  # a kernel that writes fewer fields: None for the rest
])
def test_a_test_that_moved_nothing_grows_as_the_whole_comparison_says(rollup: dict[str, int]) -> None:
    """When the rollup and the maps of the start still apply at the end (most tests), growth() writes
    its zeros out; they are the whole comparison's, key for key and in its order (the JSON results'),
    and the peak is the status's as ever."""
    from pytest_pmap._measure.boundary import growth

    maps = Maps(1, frozenset(), Names())
    before = Boundary({**BASE, "VmRSS": 15 * MiB, "VmHWM": 15 * MiB}, rollup, maps)
    after = Boundary({**BASE, "VmRSS": 15 * MiB, "VmHWM": 17 * MiB}, rollup, maps)
    compared = Boundary(after.status, dict(rollup), maps)  # equal, not the same: compared field by field
    fast, whole = growth(before, after), growth(before, compared)
    assert list(fast.items()) == list(whole.items()) and list(fast["growth"].items()) == list(whole["growth"].items())  # type: ignore[attr-defined]
    assert fast["peak_growth"] == 2 * MiB

