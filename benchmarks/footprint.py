"""Measuring does not change what is measured: the plugin's own footprint, side by side in one run.

    python benchmarks/footprint.py [--tests 300] [--mappings 20000] [--rounds 3] [--python PATH]

Anchors, each against the same run without the measurement:
  USS of pytest after --tests tests using `pmap`               <= 2 MiB more than after tests not using it
    (tests taking the fixture and reading nothing, and tests reading pmap.uss once, each compared)
  where glibc serves malloc(2 MiB) after free(malloc(4 MiB))   the same answer as in plain pytest
  processes started by snapshot(pid) of --mappings mappings    0
USS (Private_Clean + Private_Dirty of /proc/self/smaps_rollup) is read by a conftest.py hook at the
end of the session; median of --rounds interleaved runs. glibc raises its mmap threshold when a block
it mapped is freed, so the 2 MiB block comes from the heap, unless a mallopt() call fixed the
threshold: the block's address is checked against [heap] in /proc/self/maps, and glibc's count of
mapped blocks (mallinfo2) backs the answer. Processes started are counted two ways, in a process that
is its own child subreaper: Python's audit events that start one, and every PID a thread sees in
/proc/self/task/*/children while snapshot() runs. Only `from pytest_pmap import snapshot` and the
pytest command line are used, with --python (default: this Python, with this checkout on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent

#: Writes the pytest process's USS (KiB) at the end of the session, after every other hook.
CONFTEST = """
import os
import pytest

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    with open("/proc/self/smaps_rollup") as rollup:
        kib = sum(int(line.split()[1]) for line in rollup if line.startswith(("Private_Clean:", "Private_Dirty:")))
    with open(os.environ["FOOTPRINT_OUT"], "w") as out:
        out.write(str(kib))
"""

#: The suites whose USS is compared: file -> (what its tests do, the test under the parametrize line).
USS_SUITES = {
    "test_without.py": ("not using pmap", "def test_without(i):\n    assert True\n"),
    "test_fixture.py": ("taking pmap only", "def test_fixture(i, pmap):\n    pass\n"),
    "test_reading.py": ("reading pmap.uss", "def test_reading(i, pmap):\n    assert pmap.uss > 0\n"),
}
PARAMETRIZE = "import pytest\n\n@pytest.mark.parametrize('i', range({n}))\n"

#: Where malloc(2 MiB) lands after free(malloc(4 MiB)): "heap" or "new mapping", and by how many
#: blocks glibc's count of mmapped blocks grew.
MALLOC_TESTS = """
import ctypes, os

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

def where_malloc_goes():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = Mallinfo2
    libc.free(libc.malloc(4 << 20))
    blocks = mallinfo2().hblks if mallinfo2 else 0
    block = libc.malloc(2 << 20)
    blocks = mallinfo2().hblks - blocks if mallinfo2 else "?"
    heap = [line.split()[0].split("-") for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
    in_heap = any(int(lo, 16) <= block < int(hi, 16) for lo, hi in heap)
    libc.free(block)
    with open(os.environ["FOOTPRINT_OUT"], "w") as out:
        out.write(f"{'heap' if in_heap else 'new_mapping'} {blocks}")

def test_plain():
    where_malloc_goes()

def test_pmap(pmap):
    assert pmap.uss > 0
    where_malloc_goes()

def test_spawn(pmap_spawn):
    assert pmap_spawn(["sleep", "60"]).rss > 0
    where_malloc_goes()
"""

MALLOC_RUNS = {
    "(a) pytest -p no:pmap": ["-p", "no:pmap", "test_malloc.py::test_plain"],
    "    pytest, plugin loaded, unused": ["test_malloc.py::test_plain"],
    "(b) pytest --pmap": ["--pmap", "test_malloc.py::test_plain"],
    "(c) a test using pmap": ["test_malloc.py::test_pmap"],
    "(d) a test using pmap_spawn": ["test_malloc.py::test_spawn"],
}

#: Takes snapshot(pid) of a child with argv[1] mappings argv[2] times, as its own child subreaper;
#: prints the mappings, the PIDs seen as children, and the programs audit events said were started.
SNAPSHOTS = """
import ctypes, os, subprocess, sys, threading
from pytest_pmap import snapshot

MANY = '''
import mmap, sys, time
rw = mmap.PROT_READ | mmap.PROT_WRITE  # pages of alternating protections: one mapping each
keep = [mmap.mmap(-1, mmap.PAGESIZE, prot=rw if i % 2 else mmap.PROT_READ) for i in range(int(sys.argv[1]))]
for m in keep[1::2]:
    m[0] = 1
print("ready", flush=True)
time.sleep(3600)
'''
if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER: orphans come back here
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
target = subprocess.Popen([sys.executable, "-c", MANY, sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert target.stdout.readline().strip() == "ready"
mappings = sum(1 for _ in open(f"/proc/{target.pid}/maps"))
seen, started, last, done = set(), [], [None], threading.Event()

def audit(event, args):
    if event == "subprocess.Popen":
        started.append(args[0] or (args[1] if isinstance(args[1], (str, bytes)) else args[1][0]))
    elif event in ("os.posix_spawn", "os.posix_spawnp"):  # after subprocess.Popen: the same process
        if last[0] != "subprocess.Popen":
            started.append(args[0])
    elif event in ("os.fork", "os.forkpty", "os.system"):
        started.append(event)
    else:
        return
    last[0] = event

def watch():  # every child of every thread, until one last look after the snapshots
    while True:
        last_look = done.is_set()
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/children") as f:
                    seen.update(int(pid) for pid in f.read().split())
            except OSError:
                pass
        if last_look:
            return

watcher = threading.Thread(target=watch)
sys.addaudithook(audit)
watcher.start()
for _ in range(int(sys.argv[2])):
    snapshot(target.pid)
done.set()
watcher.join()
target.kill()
target.wait()
seen.discard(target.pid)  # what is left: processes started meanwhile, and orphans reparented to us
print(mappings, len(seen), *(os.path.basename(os.fsdecode(name)) for name in started))
"""


def pytest_run(python: str, folder: Path, env: dict[str, str], args: list[str]) -> str:
    """Run pytest in `folder`; returns what the run wrote to $FOOTPRINT_OUT."""
    out = folder / "out.txt"
    out.unlink(missing_ok=True)
    done = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], check=False, cwd=folder,
                          env={**env, "FOOTPRINT_OUT": str(out)}, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"pytest {' '.join(args)} failed in {folder}:\n{done.stdout}{done.stderr}")
    return out.read_text()


def suite(folder: Path, files: dict[str, str]) -> Path:
    """A folder of test files with its own pytest.ini, so no ini file above it is picked up."""
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def mib(kib: float) -> str:
    """A signed size given in KiB, in MiB from 1 MiB up."""
    return f"{kib / 1024:+.1f} MiB" if abs(kib) >= 1024 else f"{kib:+.0f} KiB"


def uss_after_tests(python: str, folder: Path, env: dict[str, str], tests: int, rounds: int) -> dict[str, float]:
    """Median USS (KiB) of the pytest process at the end of each suite, over interleaved rounds."""
    folder = suite(folder, {"conftest.py": CONFTEST,
                            **{name: PARAMETRIZE.format(n=tests) + test for name, (_, test) in USS_SUITES.items()}})
    kib: dict[str, list[int]] = {name: [] for name in USS_SUITES}
    for _ in range(rounds):
        for name in USS_SUITES:
            kib[name].append(int(pytest_run(python, folder, env, [name])))
    return {name: statistics.median(values) for name, values in kib.items()}


def malloc_answers(python: str, folder: Path, env: dict[str, str], rounds: int) -> dict[str, str]:
    """Where glibc put the 2 MiB block in each run: the answer every round gave, or each answer's count."""
    folder = suite(folder, {"test_malloc.py": MALLOC_TESTS})
    answers: dict[str, Counter[str]] = {name: Counter() for name in MALLOC_RUNS}
    for _ in range(rounds):
        for name, args in MALLOC_RUNS.items():
            answers[name][pytest_run(python, folder, env, args)] += 1
    return {name: " / ".join(f"{answer} x{n}" for answer, n in counts.most_common()) if len(counts) > 1
            else next(iter(counts)) for name, counts in answers.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", type=int, default=300)
    ap.add_argument("--mappings", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", metavar="PATH", help="run everything with this interpreter (default: this one, "
                    "with this checkout on PYTHONPATH), e.g. a virtualenv with another version installed")
    ns = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    if ns.python is None:
        env["PYTHONPATH"] = str(HERE.parent)  # the runs use this checkout's plugin
    python = ns.python or sys.executable
    with tempfile.TemporaryDirectory(prefix="pytest-pmap-footprint-") as tmp:
        where = subprocess.run([python, "-c", "import pytest_pmap; print(pytest_pmap.__file__)"], cwd=tmp,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        print(f"{python}: pytest_pmap from {Path(where).parent}; median of {ns.rounds} interleaved rounds\n")

        uss = uss_after_tests(python, Path(tmp) / "uss", env, ns.tests, ns.rounds)
        extra = {name: kib - uss["test_without.py"] for name, kib in uss.items()}
        print(f"USS of the pytest process after {ns.tests} tests:")
        for name, (what, _) in USS_SUITES.items():
            print(f"  {'tests ' + what:<34} {uss[name] / 1024:8.1f} MiB   {uss[name] / uss['test_without.py']:5.2f}x"
                  f"   {mib(extra[name]):>11} ({extra[name] / ns.tests:+.0f} KiB per test)")
        print(f"  -> using pmap adds {mib(max(extra.values()))}  (target <= 2 MiB)\n")

        answers = malloc_answers(python, Path(tmp) / "malloc", env, ns.rounds)
        plain = answers["(a) pytest -p no:pmap"]
        changed = [name.split(") ")[-1].strip() for name, answer in answers.items() if answer != plain]
        print("where glibc serves malloc(2 MiB) after free(malloc(4 MiB)), and glibc's mmapped blocks +N:")
        for name, answer in answers.items():
            kind, _, blocks = answer.partition(" ")
            threshold = "M_MMAP_THRESHOLD <= 2 MiB" if kind == "new_mapping" else "threshold raised past 2 MiB"
            print(f"  {name:<34} {kind.replace('_', ' '):<12} +{blocks:<3} {threshold:<28} "
                  f"{'same as (a)' if answer == plain else 'DIFFERS from (a)'}")
        print(f"  -> runs where the answer changes: {', '.join(changed) or 'none'}  (target: none)\n")

        out = subprocess.run([python, "-c", SNAPSHOTS, str(ns.mappings), str(ns.rounds)], check=False, cwd=tmp, env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the snapshot run failed:\n{out.stdout}{out.stderr}")
        mappings, seen, *programs = out.stdout.split()
        started = max(int(seen), len(programs))
        print(f"snapshot(pid) of a process with {mappings} mappings, {ns.rounds} calls:")
        print(f"  {'started, by audit events':<34} {len(programs):8d}   {' '.join(sorted(set(programs))) or '-'}")
        print(f"  {'children seen (subreaper)':<34} {int(seen):8d}")
        print(f"  -> processes started by snapshot(): {started / ns.rounds:g} per call  (target 0)\n")

    print("summary:")
    rows = [(f"USS, {ns.tests} tests {USS_SUITES[name][0]} vs not using it", mib(extra[name]), extra[name] <= 2048,
             "<= 2 MiB") for name in ("test_fixture.py", "test_reading.py")]
    rows.append(("runs where glibc's answer changes", ", ".join(changed) or "none", not changed, "none"))
    rows.append((f"processes started by snapshot() ({ns.rounds} calls)", str(started), not started, "0"))
    for label, figure, ok, target in rows:
        print(f"  {label:<52} {figure:>14}   {'ok' if ok else 'MISSED'} (target {target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
