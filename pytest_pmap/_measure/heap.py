"""The allocators' own counters: bytes glibc's malloc has handed out and not taken back, and the
blocks CPython's object allocator has handed out.

The kernel counts pages; the allocators count what the program holds. A block served from free
heap the process already had resident moves no page (measured: 1 MiB retained, USS +8 KiB), but
glibc's in-use bytes rise by exactly its size. So the gate reads both: the kernel's figures stay
the truth about RAM, the allocator's say whether memory was retained.

`mallinfo2()` (glibc 2.33 and later) walks malloc's free lists: 11-19 µs a call at the median on
real suites (jinja2, packaging), more on a heap fragmented into very many free chunks. Loaded once,
with ctypes, only by sessions that measure.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

__all__ = ["blocks", "heap_in_use", "trim"]

_reader: Optional[Callable[[], Optional[int]]] = None


def _load() -> Callable[[], Optional[int]]:
    """glibc's `mallinfo2()` as a function of no arguments, or one that returns None where there is
    no glibc (musl, macOS) or it is older than 2.33."""
    try:
        import ctypes

        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (ImportError, OSError, AttributeError):
        return lambda: None

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2.restype = Mallinfo2
    mallinfo2.argtypes = []

    def in_use() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)  # blocks in the heaps, and blocks mapped on their own

    return in_use


def heap_in_use() -> Optional[int]:
    """Bytes glibc's malloc has handed out and not taken back (`uordblks + hblkhd`, main and thread
    arenas); None where glibc's `mallinfo2()` is missing."""
    global _reader
    if _reader is None:
        _reader = _load()
    return _reader()


def blocks() -> int:
    """Memory blocks CPython's allocators have handed out and not taken back (`sys.getallocatedblocks()`)."""
    return sys.getallocatedblocks()


def trim() -> bool:
    """Hand the free heap back to the kernel (glibc's `malloc_trim(0)`); False where there is no glibc.
    Called once before the first test of a measuring session, so that what the plugin read and freed
    while starting (a baseline file, say) is not resident free heap the tests' allocations land in."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (ImportError, OSError, AttributeError):
        return False
