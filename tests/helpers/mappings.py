"""A process holding every odd kind of mapping, for the oracle tests. Usage: mappings.py FOLDER

A deleted mapped file, a private writeable file mapping, names with a tab and UTF-8, a newline,
invalid UTF-8, or the look of a maps line, 1 MiB of shared anonymous memory, a 64 GiB
MAP_NORESERVE region, a PROT_NONE region, a SysV shm segment, a memfd, and a dozen threads. Prints "ready" when all is in place.
"""

import ctypes
import mmap
import os
import sys
import threading
import time

folder = sys.argv[1]
keep: list[mmap.mmap] = []


def map_file(path: str, shared: bool = True) -> None:
    with open(path, "wb") as f:
        f.write(b"x" * 8192)
    fd = os.open(path, os.O_RDWR)
    keep.append(mmap.mmap(fd, 8192, flags=mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE))
    os.close(fd)


map_file(folder + "/del.bin")
os.unlink(folder + "/del.bin")
map_file(folder + "/priv.bin", shared=False)
keep[-1][0] = 1
map_file(folder + "/t\tab\u00fc.bin")
# Names the kernel escapes (a newline as \012), cannot decode (invalid UTF-8), or that look like a
# whole maps line of their own.
map_file(folder + "/new\nline.bin")
map_file(os.fsdecode(os.fsencode(folder) + b"/bad\xff\xfe.bin"))
map_file(folder + "/00400000-00452000 r-xp 00000000 08:02 173521 x.bin")
shared_anon = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
shared_anon[0] = 1
keep.append(shared_anon)

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_PRIVATE_ANON, MAP_NORESERVE = 0x22, 0x4000
libc.mmap(None, 64 << 30, 3, MAP_PRIVATE_ANON | MAP_NORESERVE, -1, 0)
libc.mmap(None, 1 << 20, 0, MAP_PRIVATE_ANON, -1, 0)

libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
segment = libc.shmget(0, 65536, 0o1600)
libc.shmat(segment, None, 0)
libc.shmctl(segment, 0, None)  # IPC_RMID: gone once we exit

memfd = os.memfd_create("memfd x")
os.ftruncate(memfd, 4096)
keep.append(mmap.mmap(memfd, 4096))

for _ in range(12):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print("ready", flush=True)
time.sleep(600)
