"""A process with N separate mappings: one region of N pages, every other page mprotect-ed.

Usage: many_mappings.py N. Prints "ready" once the map is in place, then sleeps.
"""

import ctypes
import mmap
import sys
import time

n = int(sys.argv[1])
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, n * page, 3, 0x22, -1, 0)
ctypes.memset(base, 1, n * page)  # resident, so every mapping has an Rss to read
for i in range(0, n, 2):
    if libc.mprotect(base + i * page, page, 1) != 0:
        sys.exit(f"mprotect failed at page {i}: errno {ctypes.get_errno()}")
print("ready", flush=True)
time.sleep(3600)
