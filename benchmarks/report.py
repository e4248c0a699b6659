"""CI at scale: merging shards and rendering their HTML report, timed.

    python benchmarks/report.py [--tests 10000] [--shards 8] [--rounds 5]

Targets (issue 18):
  pytest-pmap merge of 8 shards, 10,000 tests in all          < 2 s
  pytest-pmap report of the merged file, with a baseline and   < 2 s, and a page under 5 MB
  a history of 20 runs
Each is timed as a user runs it: the command in a process of its own (wall time, start-up
included), the median of `--rounds` runs; the same work in this process is shown beside it. The
shards are made here: node IDs of 60 to 90 characters, a few new mappings in one test in 20, a
budget failure with its pmap text in one in 500, and every metric measured.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_pmap import KiB, MiB  # noqa: E402
from pytest_pmap._gate.compare import compare  # noqa: E402
from pytest_pmap._gate.environment import current_environment  # noqa: E402
from pytest_pmap._gate.history import append_history, read_history  # noqa: E402
from pytest_pmap._gate.html import render_html  # noqa: E402
from pytest_pmap._gate.merge import load_inputs, merge  # noqa: E402
from pytest_pmap._gate.results import RunResults  # noqa: E402
from pytest_pmap._measure.result import MemoryResult, NewRegion  # noqa: E402

METRICS = ("mapped", "writeable_private", "shared", "rss", "pss", "uss", "private_dirty", "anonymous", "swap")


def make_results(tests: int, seed: int) -> list[MemoryResult]:
    """`tests` results with the shape of a real suite's."""
    rng = random.Random(seed)
    out = []
    for i in range(tests):
        grew = rng.choice([0, 0, 0, 4 * KiB, 8 * KiB, 132 * KiB, -64 * KiB, MiB])
        regions = tuple(NewRegion(0x7F0000000000 + n * MiB, MiB, "rw---", "[ anon ]") for n in range(3)) if i % 20 == 0 else ()
        budget = ("uss_growth 2052K > 1024K (limit from marker)",) if i % 500 == 0 else ()
        failure = ("pmap budget exceeded (1 limit):\n  uss_growth: 2052K > 1024K\n" + "\n".join(r.row() for r in regions)
                   if budget else "")
        out.append(MemoryResult(
            f"tests/unit/package_{i % 40:02}/test_module_{i % 300:03}.py::TestGroup{i % 9}::test_case_{i:05}[p{i % 13}]",
            {m: grew + rng.randrange(0, 8) * 4 * KiB for m in METRICS}, max(grew, 0) + 4 * KiB, 0, regions, budget, failure))
    return out


def timed(runs: int, work: Callable[[], object]) -> float:
    """The median wall time of `runs` calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "pytest_pmap", *args], cwd=cwd, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    ns = parser.parse_args()
    env = current_environment()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        everything = make_results(ns.tests, 1)
        names = []
        for n in range(ns.shards):
            name = f"shard-{n}.json"
            RunResults(tuple(everything[n :: ns.shards]), env, time.time(), True, 0).save(folder / name)
            names.append(name)
        RunResults(tuple(make_results(ns.tests, 2)), env, time.time(), True, 0).save(folder / "base.json")
        for run in range(20):
            append_history(folder / "history.jsonl", RunResults(tuple(make_results(ns.tests, 10 + run)), env, 1e9 + run))

        merge_cmd = timed(ns.rounds, lambda: command("merge", *names, "-o", "merged.json", cwd=folder))
        merge_lib = timed(ns.rounds, lambda: merge(load_inputs([folder / n for n in names])).save(folder / "lib.json"))
        report_args = ("report", "merged.json", "--baseline", "base.json", "--history", "history.jsonl", "-o", "report.html")
        report_cmd = timed(ns.rounds, lambda: command(*report_args, cwd=folder))
        head, base = RunResults.load(folder / "merged.json"), RunResults.load(folder / "base.json")
        history = read_history(folder / "history.jsonl")[0]
        render_lib = timed(ns.rounds, lambda: render_html(head, compare(base, head), history))
        bare = timed(ns.rounds, lambda: command("report", "merged.json", "-o", "bare.html", cwd=folder))
        sizes = {name: (folder / name).stat().st_size for name in ("merged.json", "report.html", "bare.html", "history.jsonl")}

    print(f"{ns.tests:,} tests in {ns.shards} shards; median of {ns.rounds} rounds (wall time)")
    print(f"  pytest-pmap merge (command)                     {merge_cmd:6.2f} s   target < 2 s")
    print(f"  merge in this process (load, merge, save)       {merge_lib:6.2f} s")
    print(f"  pytest-pmap report --baseline --history (cmd)   {report_cmd:6.2f} s   target < 2 s")
    print(f"  pytest-pmap report of the results alone (cmd)   {bare:6.2f} s")
    print(f"  compare and render in this process              {render_lib:6.2f} s")
    print(f"  sizes: merged {sizes['merged.json']:,} B, page {sizes['report.html']:,} B (target < 5 MB), "
          f"page without baseline and history {sizes['bare.html']:,} B, history of 20 runs {sizes['history.jsonl']:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
