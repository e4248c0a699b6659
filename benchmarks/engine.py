"""Engine speed and memory, measured side by side in one run.

    python benchmarks/engine.py [--baseline-ref GIT_REF] [--mappings 20000] [--rounds 15]
                                [--parts snapshot,command,small,pids,peak]

Targets (issue: cost nothing):
  snapshot(pid) with every mapping's Rss and the totals     <= 1.3x  a raw read() of smaps (in one process)
  pytest-pmap -x PID, a small process (sleep)                <= 5x    procps pmap -x
  pytest-pmap -x PID, --mappings mappings                    <= 0.8x  procps pmap -x
  pytest-pmap -X PID, --mappings mappings                    <= 1.0x  procps pmap -X
  pytest-pmap -x PID PID ... (many processes at once)        reported against pmap -x on the same PIDs
  snapshot() of the calling process itself                    raises its peak RSS by <= 1 MiB
Every timing is the median of interleaved rounds, so a noisy neighbour hits all contenders alike;
wall and CPU time are both shown (a process's CPU time comes from the kernel, see harness.py).
Each checkout is measured as pip installs it (harness.py); with --baseline-ref, that git ref is
installed beside this checkout and measured in the same rounds. The small-process figures come
with CPython's own start-up (`python -I -S -c pass`, `python -c pass`, and the `import re` of
pip's console-script wrapper), which no Python command can go below.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness import REPO, Installed, Usage, installs, interleaved, load, median, run

MANY_MAPPINGS = REPO / "tests" / "helpers" / "many_mappings.py"

#: Run by each checkout's Python: interleaved rounds of a raw read of smaps and of snapshot(pid),
#: in this one process; prints each contender's median wall and CPU time (ms).
IN_PROCESS = """
import os, statistics, sys, time
from pytest_pmap import snapshot
pid, rounds = int(sys.argv[1]), int(sys.argv[2])

def raw_read():
    fd = os.open(f"/proc/{pid}/smaps", os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)

def with_rss():
    snap = snapshot(pid)
    return [m.rss for m in snap.mappings]

def with_totals():
    snap = snapshot(pid)
    return [m.rss for m in snap.mappings], snap.rss, snap.pss, snap.uss, snap.private_dirty

contenders = {"raw": raw_read, "rss": with_rss, "totals": with_totals}
wall = {name: [] for name in contenders}
cpu = {name: [] for name in contenders}
for fn in contenders.values():
    fn()
for _ in range(rounds):
    for name, fn in contenders.items():
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall[name].append(time.perf_counter() - t0)
        cpu[name].append(time.process_time() - c0)
print(" ".join(f"{name}={statistics.median(wall[name]) * 1000:.3f},{statistics.median(cpu[name]) * 1000:.3f}"
               for name in contenders))
"""

#: The peak RSS a snapshot of the calling process adds (KiB), and what it read.
SELF_PEAK = """
from pytest_pmap import snapshot
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
snapshot(); snapshot(detail=False)          # warm: imports, caches
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                            # peak RSS := current RSS
before = hwm()
snap = snapshot()
after = hwm()
print(after - before, len(snap.mappings), sum(m.rss for m in snap.mappings) >> 10)
"""


def start(argv: list[str]) -> subprocess.Popen[str]:
    """A target process that prints "ready" when it is in place."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{argv} did not start")
    return proc


def row(name: str, runs: list[Usage], base: list[Usage] | None = None, target: str = "") -> str:
    wall, cpu = median([u.wall for u in runs]), median([u.cpu for u in runs])
    text = f"    {name:<44} {wall * 1000:8.1f} ms  cpu {cpu * 1000:8.1f} ms"
    if base is not None:
        text += (f"   {wall / median([u.wall for u in base]):5.2f}x  (cpu {cpu / median([u.cpu for u in base]):5.2f}x)"
                 f"{'  ' + target if target else ''}")
    return text


def snapshot_part(insts: list[Installed], pid: int, rounds: int) -> None:
    print(f"snapshot(pid) in one process, against a raw read() of smaps in the same process: medians of {rounds} "
          "rounds (wall, cpu)")
    per: dict[str, dict[str, list[tuple[float, float]]]] = {i.label: {"raw": [], "rss": [], "totals": []} for i in insts}

    def measure(inst: Installed) -> None:
        out = run([inst.python, "-c", IN_PROCESS, str(pid), "3"]).stdout.split()
        for item in out:
            name, _, values = item.partition("=")
            wall, cpu = values.split(",")
            per[inst.label][name].append((float(wall), float(cpu)))

    interleaved({inst.label: partial(measure, inst) for inst in insts}, rounds, warmup=0)
    for inst in insts:
        got = per[inst.label]
        raw_wall, raw_cpu = median([w for w, _ in got["raw"]]), median([c for _, c in got["raw"]])
        for name, what in (("raw", "raw read() of smaps"), ("rss", "snapshot(pid) + every Rss"),
                           ("totals", "snapshot(pid) + every Rss + rss, pss, uss, private_dirty")):
            wall, cpu = median([w for w, _ in got[name]]), median([c for _, c in got[name]])
            target = "  (target <= 1.3x)" if name == "totals" else ""
            print(f"    {inst.label:<28} {what:<58} {wall:7.1f} ms {wall / raw_wall:5.2f}x   "
                  f"cpu {cpu:7.1f} ms {cpu / raw_cpu:5.2f}x{target}")
    print()


def command_part(insts: list[Installed], pid: int, rounds: int, pmap: str) -> None:
    print(f"the command on the same process: medians of {rounds} interleaved rounds")
    contenders: dict[str, Callable[[], Usage]] = {
        "procps pmap -x": partial(run, [pmap, "-x", str(pid)]),
        "procps pmap -X": partial(run, [pmap, "-X", str(pid)]),
    }
    for inst in insts:
        contenders[f"{inst.label}: pytest-pmap -x"] = partial(run, [inst.command, "-x", str(pid)])
        contenders[f"{inst.label}: pytest-pmap -X"] = partial(run, [inst.command, "-X", str(pid)])
    got = interleaved(contenders, rounds)
    for fmt, target in (("x", "(target <= 0.8x)"), ("X", "(target <= 1.0x)")):
        base = got[f"procps pmap -{fmt}"]
        print(row(f"procps pmap -{fmt}", base))
        for inst in insts:
            print(row(f"{inst.label}: pytest-pmap -{fmt}", got[f"{inst.label}: pytest-pmap -{fmt}"], base, target))
    print()


def small_part(insts: list[Installed], rounds: int, pmap: str) -> None:
    target = subprocess.Popen(["sleep", "600"])
    try:
        pid = str(target.pid)
        python = insts[-1].python
        contenders: dict[str, Callable[[], Usage]] = {
            "procps pmap -x": partial(run, [pmap, "-x", pid]),
            "python -I -S -c pass": partial(run, [python, "-I", "-S", "-c", "pass"]),
            "python -c pass": partial(run, [python, "-c", "pass"]),
            "python -c 'import re' (pip's wrapper)": partial(run, [python, "-c", "import re"]),
        }
        for inst in insts:
            contenders[f"{inst.label}: pytest-pmap -x"] = partial(run, [inst.command, "-x", pid])
        got = interleaved(contenders, rounds)
    finally:
        target.kill()
        target.wait()
    base = got["procps pmap -x"]
    print(f"a small process (sleep): medians of {rounds} interleaved rounds")
    for name, runs in got.items():
        print(row(name, runs, None if name == "procps pmap -x" else base,
                  "(target <= 5x)" if name.endswith("pytest-pmap -x") else ""))
    print()


def pids_part(insts: list[Installed], rounds: int, pmap: str, count: int) -> None:
    procs = [start([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"])
             for _ in range(count)]
    try:
        pids = [str(p.pid) for p in procs]
        contenders: dict[str, Callable[[], Usage]] = {"procps pmap -x PID...": partial(run, [pmap, "-x", *pids])}
        for inst in insts:
            contenders[f"{inst.label}: pytest-pmap -x PID..."] = partial(run, [inst.command, "-x", *pids])
        got = interleaved(contenders, rounds)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    base = got["procps pmap -x PID..."]
    print(f"{count} Python processes at once (`pytest-pmap -x $(pgrep python)`): medians of {rounds} rounds")
    for name, runs in got.items():
        print(row(name, runs, None if runs is base else base))
    print()


def peak_part(insts: list[Installed]) -> None:
    print("snapshot() of the calling process itself (target: peak RSS + <= 1024 KiB)")
    for inst in insts:
        added, mappings, rss = run([inst.python, "-c", SELF_PEAK]).stdout.split()
        print(f"    {inst.label:<28} peak RSS +{added} KiB ({mappings} mappings, Rss {rss} KiB)")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", metavar="GIT_REF", help="also measure this git ref, in the same rounds")
    ap.add_argument("--parts", default="snapshot,command,small,pids,peak", help="which measurements (default: all)")
    ap.add_argument("--mappings", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--pids", type=int, default=40, help="how many processes the many-PIDs run lists")
    ns = ap.parse_args()
    parts = set(ns.parts.split(","))
    pmap = shutil.which("pmap")

    print(f"load average at start: {load()}  ({sys.executable})\n")
    with tempfile.TemporaryDirectory(prefix="pytest-pmap-bench-") as tmp:
        insts = installs(Path(tmp), ns.baseline_ref)
        if parts & {"snapshot", "command"}:
            target = start([sys.executable, str(MANY_MAPPINGS), str(ns.mappings)])
            try:
                with open(f"/proc/{target.pid}/smaps", "rb") as f:
                    size = len(f.read())
                print(f"target: PID {target.pid}, {ns.mappings} mappings, smaps {size / 2**20:.1f} MiB\n")
                if "snapshot" in parts:
                    snapshot_part(insts, target.pid, ns.rounds)
                if "command" in parts and pmap:
                    command_part(insts, target.pid, max(5, ns.rounds // 2), pmap)
            finally:
                target.kill()
                target.wait()
        if "small" in parts and pmap:
            small_part(insts, ns.rounds * 2, pmap)
        if "pids" in parts and pmap:
            pids_part(insts, ns.rounds, pmap, ns.pids)
        if "peak" in parts:
            peak_part(insts)
        if not pmap:
            print("procps pmap is not installed: the command's comparisons were skipped\n")
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
