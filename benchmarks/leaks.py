"""How reliably `--pmap-leaks` tells leaks from caches and clean tests: examples/leaks run again
and again, each run a fresh pytest process, the verdicts counted.

    python benchmarks/leaks.py [--runs 20] [--calls N] [--trace] [-n WORKERS]

Target (issue 17): every leak flagged and every non-leak passing in 20 of 20 runs.
Prints, per test, how many runs failed it, and the wall time of a run with and without --pmap-leaks.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "examples" / "leaks" / "test_leaks.py"
LEAKS = ("test_leaks_1mib_per_call", "test_leaks_256kib_per_call", "test_leaks_small_objects")


def run(args: list[str], out: Path) -> tuple[dict[str, bool], float]:
    """One pytest run; test name -> whether the leak check failed it; and the wall time."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                    str(SUITE), "--pmap-json", str(out), *args],
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    took = time.perf_counter() - start
    results = json.loads(out.read_text())["results"]
    return {r["nodeid"].rpartition("::")[2]: bool((r.get("leak") or {}).get("leaks")) for r in results}, took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--calls", type=int, default=None, help="--pmap-leaks-calls (default: the plugin's)")
    ap.add_argument("--trace", action="store_true", help="add --pmap-trace")
    ap.add_argument("-n", dest="workers", default=None, help="pytest-xdist workers")
    opts = ap.parse_args()
    args = ["--pmap-leaks"] + (["--pmap-leaks-calls", str(opts.calls)] if opts.calls else [])
    args += ["--pmap-trace"] if opts.trace else []
    args += ["-n", opts.workers] if opts.workers else []
    flagged: dict[str, int] = {}
    times: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        for i in range(opts.runs):
            verdicts, took = run(args, out)
            times.append(took)
            for name, leaks in verdicts.items():
                flagged[name] = flagged.get(name, 0) + leaks
            if i < 3:
                plain.append(run(args[len(args):], out)[1])  # the same suite measured without --pmap-leaks
    right = 0
    print(f"{opts.runs} runs of {SUITE.relative_to(ROOT)} with {' '.join(args)}")
    for name, count in sorted(flagged.items()):
        expected = opts.runs if name in LEAKS else 0
        right += count == expected
        print(f"  {name:<32} flagged as leaking in {count:>2} of {opts.runs} runs "
              f"({'leak' if name in LEAKS else 'not a leak'}: {'as expected' if count == expected else 'WRONG'})")
    print(f"{right} of {len(flagged)} tests judged right in every run")
    print(f"wall time per run: {sorted(times)[len(times) // 2]:.2f}s with --pmap-leaks, "
          f"{sorted(plain)[len(plain) // 2]:.2f}s with --pmap alone")
    return 0 if right == len(flagged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
