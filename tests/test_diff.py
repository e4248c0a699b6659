"""MapDiff on this very process: new, merged, split and removed mappings."""

from __future__ import annotations

import ctypes
import mmap

import pytest
from conftest import known

from pytest_pmap import MiB, Snapshot, snapshot
from pytest_pmap._engine.diff import MapDiff
from pytest_pmap._engine.mapping import mappings_of
from pytest_pmap._engine.parse.locate import locate_smaps

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
RW, PRIVATE_ANON, FIXED_NOREPLACE = 3, 0x22, 0x100000


def anon(size: int, at: int | None = None) -> int:
    flags = PRIVATE_ANON | (FIXED_NOREPLACE if at else 0)
    addr: int | None = libc.mmap(at, size, RW, flags, -1, 0)
    assert addr is not None and addr != ctypes.c_void_p(-1).value, ctypes.get_errno()
    ctypes.memset(addr, 1, size)
    return addr


def test_a_new_anonymous_mapping_shows_with_its_size() -> None:
    before = snapshot()
    addr = anon(16 * MiB)
    try:
        diff = MapDiff.between(before, snapshot())
        big = diff.new_mappings(anon=True, larger_than="8MiB")
        assert len(big) == 1 and big[0].new == 16 * MiB and big[0].start <= addr
        assert big[0].rss_delta is not None and big[0].rss_delta >= 16 * MiB
        assert not diff.new_mappings(anon=False, larger_than="8MiB")
        text = diff.render()
        # `+` when it stands alone, `~` when the kernel merged it into a neighbour with the same flags
        (row,) = [line for line in text.splitlines() if line[:2] in ("+ ", "~ ") and "+16384" in line]
        assert "[ anon ]" in row
        assert "mapped:" in text and "->" in text and "writeable/private:" in text
    finally:
        libc.munmap(addr, 16 * MiB)


def test_a_region_merged_into_an_old_one_counts_only_its_new_bytes() -> None:
    # Map 65 MiB and give back its top 1 MiB: the hole is where the new region will go, right after
    # the old 64 MiB with the same flags, so the kernel merges the two into one VMA.
    base = anon(65 * MiB)
    libc.munmap(base + 64 * MiB, MiB)
    size = 64 * MiB
    try:
        before = snapshot()
        if anon(MiB, at=base + 64 * MiB) != base + 64 * MiB:
            pytest.fail("could not map the new region into the hole")
        size = 65 * MiB
        after = snapshot()
        merged = [m for m in after if m.start <= base < m.end]
        assert merged and merged[0].end >= base + 65 * MiB, "the kernel was expected to merge the two VMAs"
        diff = MapDiff.between(before, after)
        (group,) = [c for c in diff.changes if c.start <= base < c.start + 66 * MiB and c.new]
        assert group.kind == "~" and group.new == 1 * MiB
        assert not diff.new_mappings(anon=True, larger_than="8MiB")
        assert diff.new_mappings(anon=True, larger_than="512K")[0].new == 1 * MiB
        libc.munmap(base, size)
        size = 0
        gone = MapDiff.between(after, snapshot())
        # Part of the freed range may be reused at once (malloc, the snapshot's own buffers), so
        # allow a little of it to be mapped again.
        assert any(c.gone >= 64 * MiB for c in gone.changes)
        assert known(gone.growth.mapped) <= -64 * MiB
    finally:
        if size:
            libc.munmap(base, size)


def test_a_split_is_a_change_with_nothing_new() -> None:
    base = anon(4 * MiB)
    try:
        before = snapshot()
        libc.mprotect(base + MiB, MiB, 1)
        diff = MapDiff.between(before, snapshot())
        (group,) = [c for c in diff.changes if c.start <= base < c.start + 4 * MiB + 1]
        assert group.kind == "~" and group.new == 0 and len(group.after) == 3
        assert len([pair for pair in diff.changed if pair[0].start == base]) >= 1
    finally:
        libc.munmap(base, 4 * MiB)


def test_shared_anonymous_memory_is_anonymous() -> None:
    before = snapshot()
    m = mmap.mmap(-1, 12 * MiB)
    m.write(b"x" * (12 * MiB))
    try:
        (change,) = MapDiff.between(before, snapshot()).new_mappings(anon=True, larger_than="8MiB")
        assert change.mapping.perms == "rw-s" and change.path == "/dev/zero (deleted)"
    finally:
        m.close()


def test_ignore_leaves_mappings_out() -> None:
    before = snapshot()
    addr = anon(9 * MiB)
    try:
        diff = MapDiff.between(before, snapshot(), ignore=lambda m: m.start <= addr < m.end)
        assert not diff.new_mappings(larger_than="8MiB")
    finally:
        libc.munmap(addr, 9 * MiB)


def test_limit_keeps_the_biggest_rows() -> None:
    before = snapshot()
    small = libc.mmap(None, MiB, 1, PRIVATE_ANON, -1, 0)  # read-only: the kernel will not merge it with the other
    big = anon(3 * MiB)
    try:
        diff = MapDiff.between(before, snapshot())
        assert len(diff) >= 2
        text = diff.render(limit=1)
        assert "smaller change" in text
        (row,) = [line for line in text.splitlines() if line[:2] in ("+ ", "~ ", "- ")]
        assert "+3072" in row
    finally:
        libc.munmap(small, MiB)
        libc.munmap(big, 3 * MiB)


@pytest.mark.parametrize("bad", ["lots", -1.5])
def test_bad_threshold(bad: object) -> None:
    s = snapshot(detail=False)
    with pytest.raises(Exception, match="not a size"):
        MapDiff.between(s, s).new_mappings(larger_than=bad)  # type: ignore[arg-type]


def _canned(text: bytes) -> Snapshot:
    return Snapshot(pid=1, mappings=mappings_of(locate_smaps([text])))


def test_unknown_rss_stays_unknown_in_a_diff() -> None:
    # WSL1-style smaps: no Rss lines. The diff must not turn "unknown" into zero.
    block = b"%x-%x rw-p 00000000 00:00 0 \nSize:  %d kB\nPrivate_Dirty:  4 kB\nShared_Dirty:  0 kB\nSwap:  0 kB\n"
    before = _canned(block % (0x1000, 0x2000, 4))
    after = _canned(block % (0x1000, 0x2000, 4) + block % (0x10000, 0x12000, 8))
    (change,) = MapDiff.between(before, after).changes
    assert change.kind == "+" and change.new == 8192
    assert change.rss_delta is None
    assert change.dirty_delta == 4096
