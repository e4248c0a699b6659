"""What `--pmap-trace` costs: a suite of small tests run with `--pmap` and with `--pmap --pmap-trace`
(at depth 1 and at the default depth), each a fresh pytest process, rounds interleaved.

    python benchmarks/trace.py [--tests 2000] [--rounds 3]
    python benchmarks/trace.py --suite DIR --python PYTHON [--rounds 3]

The second form runs a real suite (DIR, with its own configuration) with PYTHON, an interpreter
that has the suite's requirements, pytest and pytest-pmap installed (benchmarks/gate_suite.py
makes such venvs from sdists: `--work DIR/venvs/NAME/bin/python`).

Prints the median CPU time (user + system, from the kernel) of each and its ratio to `--pmap`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

SMALL_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_small(i):
    assert sum(range(i % 100)) >= 0
"""


def cpu(args: list[str], folder: Path, python: str = sys.executable) -> float:
    """CPU seconds of one pytest run over `folder`."""
    before = os.times()
    subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                   cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--suite", type=Path, metavar="DIR", help="a real suite's folder instead of small tests")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the suite")
    ap.add_argument("--arg", action="append", default=[], help="add to every run (e.g. --arg=--ignore=tests/x.py)")
    opts = ap.parse_args()
    modes = {"--pmap": ["--pmap"],
             "--pmap --pmap-trace --pmap-trace-depth 1": ["--pmap", "--pmap-trace", "--pmap-trace-depth", "1"],
             "--pmap --pmap-trace": ["--pmap", "--pmap-trace"], "plain pytest": ["-p", "no:pmap"]}
    times: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as tmp:
        folder = opts.suite.resolve() if opts.suite else Path(tmp)
        if not opts.suite:
            (folder / "pytest.ini").write_text("[pytest]\n")
            (folder / "test_small.py").write_text(SMALL_TESTS.format(n=opts.tests))
        for _ in range(opts.rounds):
            for name, args in modes.items():
                times[name].append(cpu([*args, *opts.arg], folder, opts.python))
    base = median(times["--pmap"])
    print(f"{opts.suite or f'{opts.tests} small tests'}, median CPU of {opts.rounds} rounds")
    for name, values in times.items():
        print(f"  {name:<42} {median(values):6.2f}s  {median(values) / base:5.2f}x --pmap  "
              f"({(median(values) - base) / opts.tests * 1e6:+.0f} µs a test)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
