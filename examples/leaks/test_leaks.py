"""A suite for `pytest --pmap-leaks`: three leaks, a cache that fills once, and clean tests.

    pytest examples/leaks --pmap-leaks               # the three leaks fail, the rest pass
    pytest examples/leaks --pmap-leaks --pmap-trace  # ... and each names the line that keeps memory

benchmarks/leaks.py runs it 20 times and counts the verdicts.
"""
from __future__ import annotations

KEPT: list[object] = []
CACHE: dict[str, bytes] = {}


def test_leaks_1mib_per_call() -> None:
    KEPT.append(b"x" * (1 << 20))  # memory really written: the kernel backs every page


def test_leaks_256kib_per_call() -> None:
    KEPT.append(b"y" * (256 << 10))


def test_leaks_small_objects() -> None:
    KEPT.append([(i, i + 1) for i in range(20_000)])  # 20,000 small tuples: CPython's arenas


def test_cache_fills_once() -> None:
    if "table" not in CACHE:  # filled by the warm-up call, then only read
        CACHE["table"] = b"z" * (16 << 20)
    assert len(CACHE["table"]) == 16 << 20


def test_clean_small() -> None:
    words = [str(i) for i in range(10_000)]
    assert len(words) == 10_000


def test_clean_large_temporary() -> None:
    block = b"q" * (8 << 20)  # freed at the end of every call
    assert block[-1:] == b"q"
