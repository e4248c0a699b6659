"""The plugin's cost, measured side by side in one run.

    python benchmarks/plugin.py [--tests 2000] [--rounds 3]

Anchor (issue: the pytest plugin):
  pytest --pmap on a suite of 2,000 small tests   <= 1.3x  plain pytest on the same suite
Also: what each fixture costs per test, in milliseconds (a suite of tests using it, minus the same
suite without it). Every timing is the median of interleaved rounds of whole pytest runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}  # the runs use this checkout's plugin

SMALL_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_small(i):
    assert sum(range(i % 100)) >= 0
"""

FIXTURE_TESTS = """
import sys
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


def pytest_run(folder: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
                   env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def medians(runs: dict[str, list[str]], folder: Path, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, args in runs.items():
            times[name].append(pytest_run(folder, *args))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("--fixture-tests", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ns = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_small.py").write_text(SMALL_TESTS.format(n=ns.tests))
        t = medians({
            "pytest -p no:pmap (plugin off)": ["-p", "no:pmap"],
            "pytest (plugin loaded, unused)": [],
            "pytest --pmap": ["--pmap"],
        }, folder, ns.rounds)
        base = t["pytest -p no:pmap (plugin off)"]
        print(f"{ns.tests} small tests, median of {ns.rounds} interleaved runs ({sys.executable}):\n")
        for name, secs in t.items():
            print(f"  {name:<32} {secs:7.2f} s   {secs / base:5.2f}x")
        print(f"  -> pytest --pmap / plain pytest = {t['pytest --pmap'] / base:.2f}x  (target <= 1.3x)\n")

        (folder / "test_small.py").unlink()
        target = subprocess.Popen(["sleep", "600"])
        try:
            (folder / "test_fixtures.py").write_text(FIXTURE_TESTS.format(n=ns.fixture_tests, pid=target.pid))
            kinds = ["plain", "self", "spawn", "attach"]
            t = medians({kind: ["-k", f"test_{kind}"] for kind in kinds}, folder, ns.rounds)
        finally:
            target.kill()
            target.wait()
        print(f"per-test cost of each fixture ({ns.fixture_tests} tests each, minus as many plain tests):\n")
        for kind in kinds[1:]:
            per_test = (t[kind] - t["plain"]) / ns.fixture_tests * 1000
            print(f"  {'pmap_' + kind if kind != 'self' else 'pmap':<12} {per_test:6.1f} ms per test "
                  "(setup, one reading, teardown)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
