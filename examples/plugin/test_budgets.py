"""Memory budgets on the test process itself: the `pmap` fixture and the `pmap` marker.

Run: pytest examples --pmap     (the table at the end lists the tests that grew the most)
"""

from __future__ import annotations

import mmap

import pytest

from pytest_pmap import MiB

CACHE: list[bytes] = []


def load_table(rows: int) -> list[tuple[int, str]]:
    """The code under test: builds a table whose memory should scale with `rows`."""
    return [(i, f"row-{i}") for i in range(rows)]


def test_loading_a_table_stays_within_budget(pmap) -> None:
    table = load_table(50_000)
    assert pmap.growth.uss < 32 * MiB          # fails with the pmap diff if it does not
    assert pmap.writeable_private < "2GiB"
    assert len(table) == 50_000


def test_no_new_anonymous_mapping_over_8_mib(pmap) -> None:
    table = load_table(10_000)
    assert not pmap.new_mappings(anon=True, larger_than="8MiB")
    assert table


def test_the_peak_is_exact_even_when_memory_is_freed(pmap) -> None:
    scratch = bytearray(48 * MiB)               # touched: the kernel hands out zeroed pages
    del scratch
    assert pmap.growth.rss < 8 * MiB            # freed again ...
    assert pmap.peak_growth > 40 * MiB          # ... but the peak since the test began saw it


def test_mark_starts_a_new_baseline(pmap) -> None:
    CACHE.append(bytes(16 * MiB))               # setup we do not want to count
    pmap.mark()
    CACHE.append(bytes(MiB))
    assert pmap.growth.uss < 4 * MiB


@pytest.mark.pmap(uss_growth="24MiB", new_anon="32MiB", peak_growth="96MiB")
def test_a_marker_budget_needs_no_code() -> None:
    CACHE.append(bytes(16 * MiB))


@pytest.mark.pmap(mapped_growth="256MiB")
def test_reserved_but_untouched_memory_is_mapped_not_resident(pmap) -> None:
    region = mmap.mmap(-1, 128 * MiB, flags=mmap.MAP_PRIVATE)  # address space only
    assert pmap.growth.mapped >= 128 * MiB
    assert pmap.growth.rss < 8 * MiB
    region.close()
