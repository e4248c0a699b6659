"""Process trees: the cost of reading one, side by side with raw reads, and of counting its unique pages.

    python benchmarks/tree.py [--baseline-ref GIT_REF] [--processes 64] [--mib 64] [--rounds 15]
                              [--unique-mib 1024]

Anchors (issue: process trees):
  snapshot_tree(pid, detail=False) of a 64-process tree  <= 1.2x  raw reads of each process's maps and smaps_rollup
  snapshot_tree(pid) of the same tree, full detail        <= 1.3x  raw reads of each process's smaps
  unique on a tree with 1 GiB resident                    measured: the pagemap walk and the kpagecount reads
The trees are tests/helpers/forked_tree.py: a Python master that touches N MiB (--mib), then forks
workers that share it copy-on-write. Each checkout (this one, and --baseline-ref's, installed side
by side by harness.py) is measured by a Python of its own, in outer rounds interleaved between the
checkouts; each such run times every contender in inner rounds, interleaved too. A ratio is taken
within each inner round (snapshot_tree against the raw reads of that round) and the median of those
paired ratios is shown, in CPU time (what this process spent, the kernel's writing of the files
included: what reading costs the machine) and in wall time. "Raw" finds the tree as any reader must
(each thread's children file) and reads each process's files, nothing else; snapshot_tree also
reads each process's stat, status and command line, and its stat again after the map: the checks
that make each map whole and the right process's, or ProcessGone. `unique` is off in the first two
rows: it is the third row's business (it needs root; without root that row says why it is None).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).parent
TREE = HERE.parent / "tests" / "helpers" / "forked_tree.py"
sys.path.insert(0, str(HERE.parent))

from harness import Installed, installs, interleaved, load, median, run  # noqa: E402

from pytest_pmap import snapshot_tree  # noqa: E402
from pytest_pmap._engine.pages import count_unique  # noqa: E402
from pytest_pmap._engine.procfs import ProcFS  # noqa: E402


def start_tree(mib: int, workers: int) -> tuple[subprocess.Popen[bytes], list[int]]:
    proc = subprocess.Popen([sys.executable, str(TREE), str(mib), str(workers)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    pids = json.loads(proc.stdout.readline())
    return proc, [pids["master"], *pids["workers"]]


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # its workers wait on a pipe from it: they exit with it
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def page_by_page(pids: list[int]) -> int:
    """Unique bytes counted the plain way: every page of every mapping of maps, one pagemap entry
    and one kpagecount read at a time (the tests' reference count)."""
    page = os.sysconf("SC_PAGE_SIZE")
    mapped: dict[int, int] = {}
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                start, end = (int(a, 16) for a in line.split()[0].split("-"))
                if start >= 1 << 47:
                    continue
                pagemap.seek(start // page * 8)
                for (entry,) in struct.iter_unpack("<Q", pagemap.read((end - start) // page * 8)):
                    if entry >> 63:
                        frame = entry & ((1 << 55) - 1)
                        mapped[frame] = mapped.get(frame, 0) + 1
    only = 0
    with open("/proc/kpagecount", "rb") as kpagecount:
        for frame, times in mapped.items():
            kpagecount.seek(frame * 8)
            only += struct.unpack("<Q", kpagecount.read(8))[0] == times
    return only * page


#: Run by each checkout's Python against one tree: interleaved inner rounds of the raw reads and of
#: snapshot_tree; prints, for each contender, each round's wall and CPU seconds (JSON).
IN_PROCESS = """
import json, os, sys, time
from pytest_pmap import snapshot_tree
root, processes, rounds = map(int, sys.argv[1:4])

def walk():
    found = [root]
    for pid in found:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += map(int, f.read().split())
    return found

def read_all(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)

def raw_maps_rollup():
    for pid in walk():
        read_all(f"/proc/{pid}/maps")
        read_all(f"/proc/{pid}/smaps_rollup")

def raw_smaps():
    for pid in walk():
        read_all(f"/proc/{pid}/smaps")

def cheap():
    assert len(snapshot_tree(root, detail=False, unique=False).processes) == processes

def full():
    assert len(snapshot_tree(root, unique=False).processes) == processes

contenders = {"raw": raw_maps_rollup, "cheap": cheap, "raw_smaps": raw_smaps, "full": full}
for fn in contenders.values():
    fn()
got = {name: [] for name in contenders}
for _ in range(rounds):
    for name, fn in contenders.items():
        w, c = time.perf_counter(), time.process_time()
        fn()
        got[name].append((time.perf_counter() - w, time.process_time() - c))
print(json.dumps(got))
"""


def reading(insts: list[Installed], processes: int, mib: int, rounds: int) -> None:
    proc, pids = start_tree(mib, processes - 1)
    try:
        per: dict[str, dict[str, list[tuple[float, float]]]] = {
            inst.label: {"raw": [], "cheap": [], "raw_smaps": [], "full": []} for inst in insts}

        def measure(inst: Installed) -> None:
            got = json.loads(run([inst.python, "-c", IN_PROCESS, str(pids[0]), str(processes), "3"]).stdout)
            for name, times in got.items():
                per[inst.label][name] += [(wall, cpu) for wall, cpu in times]

        interleaved({inst.label: partial(measure, inst) for inst in insts}, rounds, warmup=0)
        mappings = sum(len(s.mappings) for s in snapshot_tree(pids[0], unique=False).processes.values())
        print(f"a tree of {processes} Python processes sharing {mib} MiB, {mappings} mappings in all; {rounds} rounds "
              "of 3, each ratio taken within a round (CPU time: this process's, the kernel's writing of the files "
              "included), the median shown")
        width = max(len(inst.label) for inst in insts) + 52
        print(f"  {'':<{width}}{'ours':>10}{'raw':>10}{'cpu':>8}{'wall':>8}   target")
        for inst in insts:
            got = per[inst.label]
            for ours, raw, what, target in (("cheap", "raw", "snapshot_tree(detail=False) / maps + smaps_rollup", 1.2),
                                            ("full", "raw_smaps", "snapshot_tree() / smaps", 1.3)):
                cpu = median([o[1] / r[1] for o, r in zip(got[ours], got[raw])])
                wall = median([o[0] / r[0] for o, r in zip(got[ours], got[raw])])
                print(f"  {inst.label + ': ' + what:<{width}}{median([o[1] for o in got[ours]]) * 1e3:>8.2f}ms"
                      f"{median([r[1] for r in got[raw]]) * 1e3:>8.2f}ms{cpu:>7.2f}x{wall:>7.2f}x   <= {target}x"
                      f"{'' if cpu <= target else '  MISSED'}")
    finally:
        stop_tree(proc)


def unique_cost(mib: int, rounds: int) -> None:
    proc, pids = start_tree(mib, 3)
    try:
        tree = snapshot_tree(pids[0], unique=False)
        fs = ProcFS()

        def walk() -> None:
            count_unique(fs, tree.processes.values())

        count = count_unique(fs, tree.processes.values())
        t = {"count_unique": median(_timed(walk, max(3, rounds // 3)))}
        resident = sum(s.rss for s in tree.processes.values())
        print(f"\nunique of a tree of 4 processes sharing {mib} MiB (RSS summed: {resident >> 20} MiB)")
        if count.unique is None:
            print(f"  unique: None ({count.note})")
            return
        for _ in range(3):  # the kernel may still be moving pages (khugepaged): count again until both agree
            t0 = time.perf_counter()
            reference = page_by_page(pids)
            plain = time.perf_counter() - t0
            count = count_unique(fs, tree.processes.values())
            if count.unique == reference:
                break
        assert count.unique is not None
        agree = "the same" if reference == count.unique else f"DIFFERENT by {(count.unique - reference) >> 10} KiB"
        rate = resident / (1 << 30) / t["count_unique"]
        print(f"  unique: {count.unique >> 20} MiB ({count.frames} distinct page frames); page by page: "
              f"{reference >> 20} MiB: {agree}")
        print(f"  count_unique (pagemap of resident mappings + kpagecount): {t['count_unique'] * 1e3:.0f} ms "
              f"({rate:.1f} GiB of summed RSS a second); the page-by-page count: {plain * 1e3:.0f} ms")
    finally:
        stop_tree(proc)


def _timed(fn: Callable[[], object], rounds: int) -> list[float]:
    """Wall seconds of each of `rounds` calls of `fn`, after one call to warm up."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", metavar="GIT_REF", help="also measure this git ref, in the same rounds")
    ap.add_argument("--processes", type=int, default=64)
    ap.add_argument("--mib", type=int, default=64, help="what the master touches before it forks (default 64)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--unique-mib", type=int, default=1024)
    args = ap.parse_args()
    print(f"load average at start: {load()}\n")
    with tempfile.TemporaryDirectory(prefix="pytest-pmap-bench-") as tmp:
        reading(installs(Path(tmp), args.baseline_ref), args.processes, args.mib, args.rounds)
    unique_cost(args.unique_mib, args.rounds)
    print(f"\nload average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
