"""Measuring leaves the measured process alone, and every reading means one thing: probes end with
their test, glibc is left as it is unless asked, a failure's report shows the numbers its assertion
used, and `--pmap`'s rss is smaps' Rss as a budget's is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_pmap import KiB, MiB
from pytest_pmap._engine.render.names import Names
from pytest_pmap._measure.boundary import Boundary, Maps, growth

#: A test that finds where glibc serves a 2 MiB block after a 4 MiB one was freed: a block of its
#: own (a new mapping: glibc counts it in mallinfo2's hblks) or the heap. glibc's own rule raises the
#: mmap threshold past 4 MiB at that free, so the 2 MiB block comes from the heap.
MALLOC_PROBE = """
import ctypes

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Mallinfo2

def test_where_malloc_serves_2_mib(record_property):
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(2 << 20)
    record_property("own_mapping", libc.mallinfo2().hblks > before)
    libc.free(block)
"""


def _own_mapping(pytester: pytest.Pytester, *args: str) -> bool:
    pytester.makepyfile(test_malloc=MALLOC_PROBE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=out.xml", *args)
    result.assert_outcomes(passed=1)
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="own_mapping"' in xml
    return 'name="own_mapping" value="True"' in xml


def test_pmap_leaves_glibc_as_it_is_and_the_option_fixes_its_thresholds(pytester: pytest.Pytester) -> None:
    plain = _own_mapping(pytester, "-p", "no:pmap")
    assert plain is False, "glibc served the block from a mapping of its own even without the plugin"
    assert _own_mapping(pytester, "--pmap") is plain
    assert _own_mapping(pytester, "--pmap-malloc-thresholds") is True


def test_a_probe_is_released_when_its_test_ends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import gc, weakref
        SEEN = []
        def test_uses_pmap(pmap):
            SEEN.append(weakref.ref(pmap))
            SEEN.append(weakref.ref(pmap.baseline))
            assert pmap.uss > 0
        def test_after():
            gc.collect()
            assert [ref() for ref in SEEN] == [None, None]
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_failure_s_report_shows_the_diff_its_assertion_read(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_pmap import MiB
        KEEP = []
        def test_reads_then_grows(pmap):
            KEEP.append(b"a" * (8 * MiB))
            grown = pmap.growth.rss             # the snapshot the assertion uses
            KEEP.append(b"b" * (64 * MiB))      # after it: not part of what failed
            assert grown < 0
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    section = result.stdout.str().split("pmap: PID", 1)[1]
    total = next(line for line in section.splitlines() if line.strip().startswith("total kB"))
    rss_kib = int(total.split()[3])
    assert 8 * 1024 <= rss_kib < 40 * 1024, total


def _boundary(rss_status: int, rss_rollup: int) -> Boundary:
    return Boundary({"VmRSS": rss_status, "VmHWM": rss_status}, {"Rss": rss_rollup, "Pss": 0},
                    Maps(1, frozenset(), Names()))


def test_pmap_s_rss_growth_is_smaps_rss_as_in_budgets() -> None:
    """VmRSS is the kernel's counter, which can lag the page tables; rss is smaps' Rss everywhere."""
    before, after = _boundary(100 * MiB, 96 * MiB), _boundary(101 * MiB, 100 * MiB)
    assert growth(before, after)["growth"]["rss"] == 4 * MiB  # type: ignore[index]


def test_the_results_file_records_rss_from_smaps_rollup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        KEEP = []
        def test_keeps():
            KEEP.append(b"x" * (16 << 20))
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pmap-json", "out.json").assert_outcomes(passed=1)
    (result,) = json.loads(Path(pytester.path / "out.json").read_text())["results"]
    assert result["growth"]["rss"] >= 16 * MiB - 64 * KiB
    assert abs(result["growth"]["rss"] - result["growth"]["anonymous"]) < 2 * MiB
