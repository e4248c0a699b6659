"""Engine speed and memory, measured side by side in one run.

    python benchmarks/engine.py [--mappings 20000] [--rounds 15]

Anchors (issue: the engine):
  snapshot(pid) with every mapping's Rss read  <= 1.5x  a raw read() of /proc/PID/smaps
  pytest-pmap -x PID                           <= 1.0x  procps pmap -x PID (wall time)
  snapshot() of the calling process itself      raises its peak RSS by <= 1 MiB
Every timing is the median of interleaved rounds, so a noisy neighbour hits all contenders alike.
CPU time counts the read-ahead helper too: it shows what pipelining the read costs in total.
The `pytest-pmap` command is timed as `pip install .` installs it: a fresh virtualenv made from
this Python, this checkout's package byte-compiled in its site-packages, and pip's console-script
wrapper. (Running the checkout in place would charge the command for compiling its modules on
every run when PYTHONDONTWRITEBYTECODE is set, and for whatever the running environment's .pth
files import at start-up.)
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Mapping
from pathlib import Path

HERE = Path(__file__).parent
MANY_MAPPINGS = HERE.parent / "tests" / "helpers" / "many_mappings.py"
sys.path.insert(0, str(HERE.parent))

from pytest_pmap import snapshot  # noqa: E402
from pytest_pmap._engine.procfs import ProcFS  # noqa: E402


def raw_read(pid: int) -> int:
    fd = os.open(f"/proc/{pid}/smaps", os.O_RDONLY)
    n = 0
    try:
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                return n
            n += len(data)
    finally:
        os.close(fd)


def snapshot_with_rss(pid: int, procfs: ProcFS | None = None) -> int:
    snap = snapshot(pid, procfs=procfs)
    return len([m.rss for m in snap.mappings])


def cpu_time() -> float:
    """CPU seconds used by this process and its reaped children (the read-ahead helper)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_quiet(argv: list[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)


#: What pip writes as the `pytest-pmap` console script.
CONSOLE_SCRIPT = """#!{python}
import re
import sys
from pytest_pmap.cli import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


def install(where: Path) -> Path:
    """This checkout installed as `pip install .` would: returns the `pytest-pmap` command."""
    venv.create(where, symlinks=True)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    package = Path(purelib) / "pytest_pmap"
    shutil.copytree(HERE.parent / "pytest_pmap", package, ignore=shutil.ignore_patterns("__pycache__"))
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"could not byte-compile {package}")
    command = where / "bin" / "pytest-pmap"
    command.write_text(CONSOLE_SCRIPT.format(python=python))
    command.chmod(0o755)
    return command


def interleaved(contenders: Mapping[str, Callable[[], object]], rounds: int,
                cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Median wall time of each contender; with `cpu`, also fills in its median CPU time."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up: page cache, imports
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            c0, t0 = cpu_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(cpu_time() - c0)
    if cpu is not None:
        cpu.update({name: statistics.median(cs) for name, cs in cpus.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


SELF_PEAK = """
import os, sys
sys.path.insert(0, {repo!r})
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mappings", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=15)
    ns = ap.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="pytest-pmap-bench-")
    target = subprocess.Popen([sys.executable, str(MANY_MAPPINGS), str(ns.mappings)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None and target.stdout.readline().strip() == "ready"
        pid = target.pid
        with open(f"/proc/{pid}/maps") as maps:
            count = sum(1 for _ in maps)
        size = raw_read(pid)
        print(f"target: PID {pid}, {count} mappings, smaps {size / 2**20:.1f} MiB; "
              f"median of {ns.rounds} interleaved rounds\n")

        cpu: dict[str, float] = {}
        t = interleaved({
            "raw read() of smaps": lambda: raw_read(pid),
            "snapshot(pid) + every Rss": lambda: snapshot_with_rss(pid),
        }, ns.rounds, cpu)
        floor = t["raw read() of smaps"]
        for name, secs in t.items():
            print(f"  {name:<34} {secs * 1000:8.1f} ms   {secs / floor:5.2f}x   cpu {cpu[name] * 1000:6.1f} ms")
        print(f"  -> snapshot / raw read = {t['snapshot(pid) + every Rss'] / floor:.2f}x  (target <= 1.5x)\n")

        pmap = shutil.which("pmap")
        env_note = ""
        if pmap:
            ours = [str(install(Path(scratch.name) / "venv"))]
            python = str(Path(scratch.name) / "venv" / "bin" / "python")
            start = interleaved({
                "python": lambda: run_quiet([python, "-c", "pass"]),
                "imports": lambda: run_quiet([python, "-c", "import pytest_pmap._cli.pmap"]),
            }, 7)
            print(f"  the command's fixed cost: its Python starts in {start['python'] * 1000:.0f} ms, "
                  f"and imports what it needs in {(start['imports'] - start['python']) * 1000:.0f} ms more")
            cli = {
                "procps pmap -x": lambda: run_quiet([pmap, "-x", str(pid)]),
                "pytest-pmap -x": lambda: run_quiet([*ours, "-x", str(pid)]),
                "procps pmap -X": lambda: run_quiet([pmap, "-X", str(pid)]),
                "pytest-pmap -X": lambda: run_quiet([*ours, "-X", str(pid)]),
            }
            t = interleaved(cli, max(5, ns.rounds // 2))
            base = t["procps pmap -x"]
            for name, secs in t.items():
                print(f"  {name:<34} {secs * 1000:8.1f} ms   {secs / base:5.2f}x")
            print(f"  -> pytest-pmap -x / pmap -x = {t['pytest-pmap -x'] / base:.2f}x  (target <= 1.0x)")
            print(f"  -> pytest-pmap -X / pmap -X = {t['pytest-pmap -X'] / t['procps pmap -X']:.2f}x\n")
        else:
            env_note = " (procps pmap not installed: CLI comparison skipped)"
        print(env_note, end="")
    finally:
        target.kill()
        target.wait()
        scratch.cleanup()

    out = subprocess.run([sys.executable, "-c", SELF_PEAK.format(repo=str(HERE.parent))],
                         capture_output=True, text=True, check=True).stdout.split()
    print(f"  snapshot() of itself: peak RSS +{out[0]} KiB ({out[1]} mappings, Rss {out[2]} KiB)  (target <= 1024 KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
