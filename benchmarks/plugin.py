"""The plugin's cost, measured side by side in one run.

    python benchmarks/plugin.py [--baseline-ref GIT_REF] [--parts unused,suite,maps,fixtures]
                                [--tests 2000] [--many 10000] [--mapping-tests 1000] [--rounds 5]
                                [--unused-rounds 30]

Targets (issue: cost nothing):
  installed but unused: a one-test run              <= 1.03x the CPU of `pytest -p no:pmap`,
                                                       with and without PYTHONDONTWRITEBYTECODE=1
  pytest --pmap on --tests small tests              <= 1.10x plain pytest (`-p no:pmap`)
  ... and on --many tests                           the same ratio: the cost per test does not grow
  the peak RSS of a --pmap session                  reported, over plain pytest's
  pytest --pmap on --mapping-tests tests that each keep a mapping (maps read again after every test)
Also: what each fixture costs per test (a suite of tests using it, minus the same suite without it),
and which modules of ours an unused plugin imports, and how many of them pytest's assertion
rewriting loaded.

Every run is a whole pytest process of a checkout installed as pip installs it (see harness.py);
its CPU time and peak RSS come from the kernel (wait4). With --baseline-ref, the same measurements
of that git ref run in the same interleaved rounds, so before and after share the machine's noise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness import Installed, Usage, installs, interleaved, load, median, run

ONE_TEST = "def test_one():\n    assert True\n"

SMALL_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_small(i):
    assert sum(range(i % 100)) >= 0
"""

#: Tests that each keep a buffer above glibc's mmap threshold: a mapping of their own, so the map
#: grows by a line a test and every reading after a test reads maps again.
MAPPING_TESTS = """
import pytest

KEEP = []

@pytest.mark.parametrize("i", range({n}))
def test_keeps_a_mapping(i):
    KEEP.append(bytearray(300_000))
"""

FIXTURE_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert i >= 0

@pytest.mark.parametrize("i", range({n}))
def test_self(i, pmap):
    assert pmap.rss > 0

@pytest.mark.parametrize("i", range({n}))
def test_spawn(i, pmap_spawn):
    assert pmap_spawn(["sleep", "60"]).rss > 0

@pytest.mark.parametrize("i", range({n}))
def test_attach(i, pmap_attach):
    assert pmap_attach({pid}).rss > 0
"""

#: Lists, at the end of the session, the modules of ours that are imported, and how many pytest's
#: assertion rewriting loaded.
WHICH_MODULES = """
import os, sys

def pytest_unconfigure(config):
    ours = sorted(name for name in sys.modules if name.split(".")[0] == "pytest_pmap")
    rewritten = [name for name in ours if type(getattr(sys.modules[name], "__loader__", None)).__name__
                 == "AssertionRewritingHook"]
    with open(os.environ["MODULES_OUT"], "w") as out:
        out.write(f"{len(ours)} {len(rewritten)} {' '.join(ours)}")
"""


def suite(folder: Path, files: dict[str, str]) -> Path:
    """A folder of test files with its own pytest.ini, so that no ini file above it is used."""
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def pytest(inst: Installed, folder: Path, *args: str, env: dict[str, str] | None = None) -> Usage:
    return run([inst.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
               env=env if env is not None else ENV)


def environment(bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS")}
    return env if bytecode else {**env, "PYTHONDONTWRITEBYTECODE": "1"}


ENV = environment(bytecode=True)


def ratio(a: list[Usage], b: list[Usage], what: str = "cpu") -> float:
    return float(median([getattr(u, what) for u in a]) / median([getattr(u, what) for u in b]))


def unused(insts: list[Installed], scratch: Path, rounds: int) -> None:
    folder = suite(scratch / "one", {"test_one.py": ONE_TEST})
    print(f"Installed but unused: one test, CPU time of the whole pytest process, median of {rounds} "
          "interleaved rounds (target <= 1.03x)")
    for bytecode in (True, False):
        env = environment(bytecode)
        contenders: dict[tuple[str, str], Callable[[], Usage]] = {}
        for inst in insts:
            contenders[(inst.label, "off")] = partial(pytest, inst, folder, "-p", "no:pmap", env=env)
            contenders[(inst.label, "on")] = partial(pytest, inst, folder, env=env)
        got = interleaved(contenders, rounds, warmup=2)
        print(f"  {'with' if bytecode else 'PYTHONDONTWRITEBYTECODE=1, without'} byte-code caching:")
        for inst in insts:
            off, on = got[(inst.label, "off")], got[(inst.label, "on")]
            print(f"    {inst.label:<28} -p no:pmap {median([u.cpu for u in off]) * 1000:6.1f} ms   "
                  f"plugin unused {median([u.cpu for u in on]) * 1000:6.1f} ms   -> {ratio(on, off):.3f}x")
    which = suite(scratch / "which", {"test_one.py": ONE_TEST, "conftest.py": WHICH_MODULES})
    for inst in insts:
        out = which / "modules.txt"
        pytest(inst, which, env={**environment(False), "MODULES_OUT": str(out)})
        count, rewritten, *names = out.read_text().split()
        print(f"    {inst.label:<28} imports {count} modules of ours, {rewritten} through assertion rewriting: "
              f"{' '.join(names)}")
    print()


def suite_cost(insts: list[Installed], scratch: Path, sizes: list[int], rounds: int, text: str = SMALL_TESTS,
               what: str = "small tests") -> None:
    print(f"pytest --pmap on {what}: CPU time (wall time) of the whole run, median of {rounds} interleaved "
          "rounds; plain = -p no:pmap (target <= 1.10x, not growing with the number of tests); paired: the median "
          "of each round's ratio to that round's plain run")
    for n in sizes:
        folder = suite(scratch / f"{what.split()[-1]}{n}", {"test_small.py": text.format(n=n)})
        contenders: dict[tuple[str, str], Callable[[], Usage]] = {}
        for inst in insts:
            contenders[(inst.label, "plain")] = partial(pytest, inst, folder, "-p", "no:pmap")
            contenders[(inst.label, "unused")] = partial(pytest, inst, folder)
            contenders[(inst.label, "--pmap")] = partial(pytest, inst, folder, "--pmap")
        got = interleaved(contenders, rounds)
        print(f"  {n} tests:")
        for inst in insts:
            plain = got[(inst.label, "plain")]
            base_cpu, base_wall = median([u.cpu for u in plain]), median([u.wall for u in plain])
            for kind in ("unused", "--pmap"):
                runs = got[(inst.label, kind)]
                cpu, wall = median([u.cpu for u in runs]), median([u.wall for u in runs])
                # The same round's plain run beside each: a neighbour's load moves both alike.
                paired = median([u.cpu / p.cpu for u, p in zip(runs, plain)])
                print(f"    {inst.label:<28} {kind:<7} {cpu:6.2f} s ({wall:5.2f} s)  {cpu / base_cpu:.3f}x "
                      f"({wall / base_wall:.3f}x)   {(cpu - base_cpu) / n * 1e6:6.1f} µs per test   "
                      f"paired {paired:.3f}x")
            pmap_rss = median([u.max_rss for u in got[(inst.label, "--pmap")]])
            plain_rss = median([u.max_rss for u in plain])
            print(f"    {inst.label:<28} peak RSS: plain {plain_rss / 1024:.1f} MiB, --pmap {pmap_rss / 1024:.1f} MiB "
                  f"({(pmap_rss - plain_rss) / 1024:+.1f} MiB, {pmap_rss / plain_rss:.3f}x)")
    print()


def fixtures(insts: list[Installed], scratch: Path, tests: int, rounds: int) -> None:
    target = subprocess.Popen(["sleep", "600"])
    try:
        folder = suite(scratch / "fixtures", {"test_fixtures.py": FIXTURE_TESTS.format(n=tests, pid=target.pid)})
        kinds = ["plain", "self", "spawn", "attach"]
        contenders = {(inst.label, kind): partial(pytest, inst, folder, "-k", f"test_{kind}")
                      for inst in insts for kind in kinds}
        got = interleaved(contenders, rounds)
    finally:
        target.kill()
        target.wait()
    print(f"Per-test cost of each fixture ({tests} tests each, minus as many plain tests; wall time):")
    for inst in insts:
        plain = median([u.wall for u in got[(inst.label, "plain")]])
        costs = "   ".join(
            f"{'pmap_' + kind if kind != 'self' else 'pmap'} "
            f"{(median([u.wall for u in got[(inst.label, kind)]]) - plain) / tests * 1000:5.1f} ms"
            for kind in kinds[1:])
        print(f"    {inst.label:<28} {costs}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", metavar="GIT_REF", help="also measure this git ref, in the same rounds")
    ap.add_argument("--parts", default="unused,suite,maps,fixtures", help="which measurements (default: all)")
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("--many", type=int, default=10000, help="the larger suite, to see whether the cost per test grows")
    ap.add_argument("--fixture-tests", type=int, default=100)
    ap.add_argument("--mapping-tests", type=int, default=1000, help="the suite of tests that each keep a mapping")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--unused-rounds", type=int, default=30)
    ns = ap.parse_args()
    parts = set(ns.parts.split(","))

    print(f"load average at start: {load()}  ({sys.executable})\n")
    with tempfile.TemporaryDirectory(prefix="pytest-pmap-bench-") as tmp:
        scratch = Path(tmp)
        insts = installs(scratch, ns.baseline_ref)
        if "unused" in parts:
            unused(insts, scratch, ns.unused_rounds)
        if "suite" in parts:
            suite_cost(insts, scratch, [ns.tests, ns.many], ns.rounds)
        if "maps" in parts:
            suite_cost(insts, scratch, [ns.mapping_tests], ns.rounds, MAPPING_TESTS, "tests that each keep a mapping")
        if "fixtures" in parts:
            fixtures(insts, scratch, ns.fixture_tests, ns.rounds)
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
