"""glibc's malloc thresholds, fixed on request (`--pmap-malloc-thresholds`), never by default.

By default glibc raises its mmap and trim thresholds after a large block is freed (up to 32 MiB),
and then keeps freed heap for reuse: a leak that lands in heap an earlier test freed asks the
kernel for nothing, and no reading of /proc can see it. Fixing the thresholds makes every block of
128 KiB or more a mapping of its own, so such a leak shows, but it changes how the code under test
allocates: that is why it is an option (docs/gate.md has the figures).
"""

from __future__ import annotations

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "fix_malloc_thresholds"]

MMAP_THRESHOLD = 128 * 1024
"""Blocks this large get a mapping of their own (glibc's default M_MMAP_THRESHOLD)."""
TRIM_THRESHOLD = 1024 * 1024
"""Free heap at the top beyond this goes back to the kernel. glibc's default is 128 KiB; pytest's
own work between tests moves the top of the heap by more than that, and trimming it at every test
doubled the cost of `--pmap` (brk calls: 1,541 -> 218 for 2,000 tests)."""


def fix_malloc_thresholds() -> bool:
    """Fix glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, which stops glibc from raising them as it
    goes; False where there is no glibc."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_trim_threshold, TRIM_THRESHOLD)) and bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD))
