"""How long reading a process's map stalls it, measured side by side in one run.

    python benchmarks/stall.py [--mappings 20000] [--rounds 10]

While /proc/PID/smaps is being written, the kernel holds the target's memory-map lock, and a
target that maps or unmaps memory (malloc does) waits for it. The target here has MAPPINGS
mappings and maps and unmaps a page in a loop, noting every iteration that took over STALL_FLOOR;
a reader's worst stall and total stall are the longest and the summed such gaps while it ran
(median over interleaved rounds). The kernel forces what a plain read() of smaps costs, at any
read size; anchor (issue: faults, case 14): pytest-pmap stalls the target no longer than that.
procps pmap is shown for scale: it formats between 4 KiB reads, so it stalls the target in short
bursts but takes many times as long.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from pytest_pmap import snapshot  # noqa: E402

STALL_FLOOR = 0.0002
"""Loop iterations slower than this (200 µs) count as stalls; a free iteration takes ~3 µs."""

TARGET = """
import ctypes, mmap, sys, time
n, floor = int(sys.argv[1]), float(sys.argv[2])
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, n * page, 3, 0x22, -1, 0)
ctypes.memset(base, 1, n * page)
for i in range(0, n, 2):
    libc.mprotect(base + i * page, page, 1)
print("ready", flush=True)
import select
stalls = []
clock, mmap_, munmap = time.monotonic, libc.mmap, libc.munmap
last = clock()
while not select.select([0], [], [], 0)[0]:
    for _ in range(200):
        munmap(mmap_(None, page, 3, 0x22, -1, 0), page)
        now = clock()
        if now - last > floor:
            stalls.append((last, now))
        last = clock()
for start, end in stalls:
    print(start, end)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mappings", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=10)
    ns = ap.parse_args()

    target = subprocess.Popen([sys.executable, "-c", TARGET, str(ns.mappings), str(STALL_FLOOR)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert target.stdin is not None and target.stdout is not None
    assert target.stdout.readline().strip() == "ready"
    pid = target.pid

    def read_in(size: int) -> Callable[[], object]:
        def read() -> None:
            fd = os.open(f"/proc/{pid}/smaps", os.O_RDONLY)
            try:
                while os.read(fd, size):
                    pass
            finally:
                os.close(fd)
        return read

    def run(argv: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)

    readers: dict[str, Callable[[], object]] = {
        "read() 4 KiB at a time": read_in(4096),
        "read() 1 MiB at a time": read_in(1 << 20),
        "snapshot(pid)": lambda: snapshot(pid),
    }
    if shutil.which("pmap"):
        readers["procps pmap -X"] = run(["pmap", "-X", str(pid)])
    if shutil.which("cat"):
        readers["cat smaps"] = run(["cat", f"/proc/{pid}/smaps"])

    windows: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
    for fn in readers.values():
        fn()  # warm-up
    for _ in range(ns.rounds):
        for name, fn in readers.items():
            time.sleep(0.05)  # let the target run freely between readers
            t0 = time.monotonic()
            fn()
            windows[name].append((t0, time.monotonic()))

    out, _ = target.communicate("stop\n")
    stalls = [tuple(map(float, line.split())) for line in out.splitlines()]
    print(f"target: PID {pid}, {ns.mappings} mappings; stalls over {STALL_FLOOR * 1e6:.0f} µs while each reader ran; "
          f"median of {ns.rounds} interleaved rounds\n")
    print(f"  {'reader':<34} {'time':>9} {'worst stall':>12} {'total stalled':>14}")
    worst: dict[str, float] = {}
    total: dict[str, float] = {}
    for name, spans in windows.items():
        per_round = []
        for t0, t1 in spans:
            gaps = [e - s for s, e in stalls if s < t1 and e > t0]
            per_round.append((t1 - t0, max(gaps, default=0.0), sum(gaps)))
        took, worst[name], total[name] = (statistics.median(column) for column in zip(*per_round))
        print(f"  {name:<34} {took * 1000:7.1f} ms {worst[name] * 1000:9.2f} ms {total[name] * 1000:11.1f} ms")
    floor = min(worst["read() 4 KiB at a time"], worst["read() 1 MiB at a time"])
    floor_total = min(total["read() 4 KiB at a time"], total["read() 1 MiB at a time"])
    name = "snapshot(pid)"
    print(f"\n  -> {name}: worst stall {worst[name] / floor:.2f}x, total stalled {total[name] / floor_total:.2f}x "
          "a plain read()'s (target: worst <= 1.0x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
