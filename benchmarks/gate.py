"""The baseline gate's signal: false failures on a steady suite, and leaks caught.

    python benchmarks/gate.py [--runs 20] [--tolerance 2%,512KiB] [--metric uss_growth] [-n WORKERS]

Anchors (issue: the CI regression gate), all against one baseline with the given tolerance:
  a steady suite run --runs times                          0 false failures
  the same suite with a 1 MiB retained leak in one test    caught in every run, and no other test flagged
The leak is tried as one 1 MiB buffer (from malloc), and as 1 MiB and 2 MiB of small objects
(from CPython's own allocator, which keeps freed memory in reserve: a leak that fits in that
reserve never asks the kernel for memory, so no reading of /proc can see it). The script also
prints the noise it saw: per test, the largest distance of any steady run from the baseline, so
that the default tolerance can be chosen from figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # this checkout's pytest_pmap, as the runs use
from pytest_pmap._gate.compare import Tolerance, compare  # noqa: E402
from pytest_pmap._gate.results import RunResults  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}  # the runs use this checkout's plugin

#: A steady suite of the kinds of work unit tests do: parsing, building containers, files, regular
#: expressions, subprocesses, temporary allocations that are freed again, first imports.
SUITE = '''
import collections, dataclasses, decimal, io, itertools, json, os, re, subprocess, sys, tempfile
import pytest

KEEP = []
SHAPE, _, MIB = os.environ.get("GATE_LEAK", "").partition(":")


def leak():
    size = int(MIB or 0) << 20
    if SHAPE == "buffer":
        KEEP.append(b"x" * size)
    elif SHAPE == "objects":
        KEEP.append([f"{i:060d}" for i in range(size // 112)])  # small str objects, 112 bytes each


def test_json_round_trip():
    data = {"k%d" % i: [i, str(i), {"n": i * 1.5}] for i in range(2000)}
    assert json.loads(json.dumps(data)) == data


def test_regex():
    text = "\\n".join(f"line {i}: value={i * 7}" for i in range(5000))
    assert len(re.findall(r"value=(\\d+)", text)) == 5000


@pytest.mark.parametrize("n", [10, 1000, 50_000])
def test_sorting(n):
    values = [(i * 7919) % n for i in range(n)]
    assert sorted(values) == sorted(values, reverse=True)[::-1]


def test_temporary_buffer_is_freed():
    buf = bytearray(8 << 20)
    buf[::4096] = b"x" * len(buf[::4096])
    del buf


def test_files(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("x" * 100_000)
    assert len(path.read_text()) == 100_000


def test_subprocess():
    out = subprocess.run([sys.executable, "-c", "print(42)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "42"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_dataclasses():
    points = [Point(i, -i) for i in range(20_000)]
    assert sum(p.x + p.y for p in points) == 0


def test_decimal():
    total = sum(decimal.Decimal(i) / 7 for i in range(3000))
    assert total > 0


def test_counter():
    words = ("alpha beta gamma delta " * 10_000).split()
    assert collections.Counter(words)["beta"] == 10_000


def test_itertools():
    assert len(list(itertools.combinations(range(40), 3))) == 9880


@pytest.mark.parametrize("i", range(20))
def test_small(i):
    assert str(i) * 3


def test_leaky():
    leak()
    assert io.StringIO("abc").read() == "abc"


def test_first_import():
    import xml.dom.minidom
    assert xml.dom.minidom.parseString("<a/>").documentElement.tagName == "a"


def test_strings():
    s = ",".join(str(i) for i in range(100_000))
    assert s.count(",") == 99_999
'''


def run(folder: Path, workers: int, *args: str, leak: str = "") -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if workers:
        cmd += ["-n", str(workers)]
    env = {**ENV, "GATE_LEAK": leak}
    return subprocess.run(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def regressed(path: Path, base: RunResults, metric: str, tolerance: Tolerance) -> list[str]:
    """The tests the gate flags in the results file at `path`."""
    return [row.nodeid for row in compare(base, RunResults.load(path), metric, tolerance).regressions]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--tolerance", default="2%,512KiB")
    p.add_argument("--metric", default="uss_growth")
    p.add_argument("--no-leaks", action="store_true", help="only the steady runs")
    p.add_argument("-n", "--workers", type=int, default=0, help="run under pytest-xdist with this many workers")
    p.add_argument("--malloc-thresholds", action="store_true",
                   help="run every pytest with --pmap-malloc-thresholds (glibc's thresholds fixed)")
    ns = p.parse_args()
    gate = ["--pmap-metric", ns.metric, "--pmap-tolerance", ns.tolerance]
    if ns.malloc_thresholds:
        gate.append("--pmap-malloc-thresholds")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_suite.py").write_text(SUITE)
        baseline = folder / "baseline.json"
        if run(folder, ns.workers, "--pmap-save-baseline", str(baseline), *gate[4:]) != 0:
            sys.exit("the steady suite failed while its baseline was saved")
        noise: dict[str, int] = {}
        base = RunResults.load(baseline)
        tolerance = Tolerance.parse(ns.tolerance, "--tolerance")
        false_failures = 0
        flagged_steady: dict[str, int] = {}
        for i in range(ns.runs):
            out = folder / f"steady{i}.json"
            code = run(folder, ns.workers, "--pmap-baseline", str(baseline), "--pmap-json", str(out), *gate)
            false_failures += code != 0
            for nodeid in regressed(out, base, ns.metric, tolerance) if code else ():
                flagged_steady[nodeid] = flagged_steady.get(nodeid, 0) + 1
            for row in compare(base, RunResults.load(out), ns.metric, tolerance).rows:
                if row.delta is not None:
                    noise[row.nodeid] = max(noise.get(row.nodeid, 0), abs(row.delta))
        caught = {}
        for shape in () if ns.no_leaks else ("buffer:1", "objects:1", "objects:2"):
            hits = exact = 0
            for i in range(ns.runs):
                out = folder / f"{shape.replace(':', '')}-{i}.json"
                code = run(folder, ns.workers, "--pmap-baseline", str(baseline), "--pmap-json", str(out), *gate,
                           leak=shape)
                flagged = regressed(out, base, ns.metric, tolerance)
                hits += code == 1 and "test_suite.py::test_leaky" in flagged
                exact += flagged == ["test_suite.py::test_leaky"]
            caught[shape] = (hits, exact)
    tests = len(base.results)
    print(f"gate signal: {tests} tests, {ns.runs} runs each, metric {ns.metric}, tolerance {ns.tolerance}"
          + (f", xdist -n {ns.workers}" if ns.workers else "")
          + (", glibc thresholds fixed" if ns.malloc_thresholds else ", glibc as it is"))
    print(f"  steady suite, false failures:         {false_failures} of {ns.runs} runs")
    for nodeid, times in flagged_steady.items():
        print(f"    flagged {times} times: {nodeid}")
    for shape, (hits, exact) in caught.items():
        kind, _, mib = shape.partition(":")
        print(f"  {mib} MiB leak of {kind + ',':8} caught:    {hits} of {ns.runs} runs ({exact} flagged the leaking test alone)")
    worst = sorted(noise.items(), key=lambda kv: kv[1], reverse=True)[:5]
    print("  noise: largest |run - baseline| of any steady run, per test (top 5):")
    for nodeid, value in worst:
        print(f"    {value >> 10:>8} KiB  {nodeid}")
    quiet = sum(1 for v in noise.values() if v == 0)
    print(f"    {quiet} of {len(noise)} tests never moved")


if __name__ == "__main__":
    main()
