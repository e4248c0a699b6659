"""The baseline gate on a real test suite from its sdist: false alarms, leaks caught, and its cost.

    python benchmarks/gate_suite.py [--suite NAME[==VERSION]]... [--runs 20] [--xdist] [--leak 1MiB]
        [--leak-test NODEID] [--metric uss_growth] [--tolerance 2%,512KiB] [--pmap-source PATH]
        [--work DIR] [--pmap-option OPTION]... [--nice N] [--show N] [-v]

For every suite: download its sdist from PyPI (`pip download --no-binary :all: --no-deps`), unpack
it, make a venv with the suite, pytest, pytest-xdist and pytest-pmap from --pmap-source (a copy of
it, installed as users install it), and run its own tests with its own configuration:
  a warm-up run without --pmap       its failing tests and uncollectable modules are left out from
                                     here on, so a gating run that fails is the gate's doing
  a plain --pmap run                 the cost of measuring, to set against a gating run's
  --pmap-save-baseline, then --runs gating runs (--pmap-baseline, --pmap-json), each judged with
                                     `pytest-pmap compare`: an unchanged suite should never fail
  with --leak SIZE, --runs more gating runs with SIZE of bytes retained in one test (the first
                                     quiet one in the baseline by name, or --leak-test)
and the same again under `-n 2` with --xdist (its baseline saved under -n 2, too).
Downloads and venvs are kept in --work, so a rerun starts at once. Every log and results file is
kept there too, for a closer look at what the gate flagged. The cost is given in wall time and in CPU
time (of pytest and its workers), which other work on the machine disturbs less.

The default suites ship their tests in the sdist and run with pytest alone: more-itertools (765
tests, 21,000 subtests), jinja2 (784; its two async modules need trio and are left out) and
packaging (10,208; 23 modules need hypothesis or pretend and are left out). toolz runs too but has
192 tests; sortedcontainers' sdist has none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
DEFAULT_SUITES = ["more-itertools", "jinja2", "packaging"]
QUIET = 256 << 10  # a test whose peak rose less than this in the baseline is quiet (as gate.ALLOCATING)
VERBOSE = False

#: Retains SIZE bytes, really written, in one test's call phase, inside --pmap's measurement.
LEAK_PLUGIN = '''
import functools
import os
import pytest

_LEAK = []
TEST, SIZE = os.environ["GATE_SUITE_LEAK_TEST"], int(os.environ["GATE_SUITE_LEAK_SIZE"])


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item):
    # In the test function itself, so that every call of it leaks (as a leak in its code would),
    # a unittest.TestCase method as well as a plain function.
    if item.nodeid == TEST and not getattr(item.obj, "gate_suite_leaky", False):  # once, though set up again
        original = item.obj

        @functools.wraps(original)
        def leaky(*args, **kwargs):
            _LEAK.append(b"x" * SIZE)
            return original(*args, **kwargs)

        leaky.gate_suite_leaky = True
        item.obj = leaky
'''


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 1MiB, 512KiB)")
    return int(float(m[1]) * 1024 ** " KMG".index(m[2].upper() or " "))


def kib(value: int | None) -> str:
    return "?" if value is None else f"{value / 1024:+.0f}K"


def cpu() -> float:
    """CPU seconds of the processes this one has waited for (xdist workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Ran(NamedTuple):
    code: int
    wall: float
    cpu: float
    out: str


def sh(cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Ran:
    """Run `cmd`, its output kept in `log`: its exit status, wall and CPU seconds, and output."""
    if VERBOSE:
        extra = [f"{k}={v}" for k, v in (env or {}).items() if os.environ.get(k) != v]
        print("  $", *extra, *cmd, f"  (in {cwd})" if cwd else "", flush=True)
    start, start_cpu = time.perf_counter(), cpu()
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log.write_text(done.stdout)
    return Ran(done.returncode, time.perf_counter() - start, cpu() - start_cpu, done.stdout)


def prepare(spec: str, work: Path, pmap: Path) -> tuple[Path, Path, str]:
    """The suite's source tree, its venv's bin folder and the version, made once and kept in `work`."""
    safe = re.sub(r"[^\w.=-]", "_", spec).replace("==", "-")
    downloads = work / "sdists" / safe
    if not downloads.is_dir() or not list(downloads.glob("*.tar.gz")):
        downloads.mkdir(parents=True, exist_ok=True)
        ran = sh([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", spec,
                  "-d", str(downloads)], work / f"download-{safe}.log")
        if ran.code:
            sys.exit(f"pip download {spec} failed:\n{ran.out[-2000:]}")
    sdist = max(downloads.glob("*.tar.gz"))
    version = sdist.name[: -len(".tar.gz")].rpartition("-")[2]
    with tarfile.open(sdist) as tar:
        top = Path(tar.getnames()[0].split("/")[0])
        tree = work / "src" / top
        if not tree.is_dir():
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.11.4 on
                tar.extractall(work / "src", filter="data")
            else:
                tar.extractall(work / "src")
    bin_ = work / "venvs" / top.name / "bin"
    if not (bin_ / "pytest").exists():
        sh([sys.executable, "-m", "venv", str(bin_.parent)], work / f"venv-{top.name}.log")
        ran = sh([str(bin_ / "pip"), "install", "pytest", "pytest-xdist", str(tree)], work / f"install-{top.name}.log")
        if ran.code:
            shutil.rmtree(bin_.parent)
            sys.exit(f"installing {spec} failed:\n{ran.out[-2000:]}")
    # pytest-pmap anew every time: the checkout changes between reruns, the suite does not.
    ran = sh([str(bin_ / "pip"), "install", "--force-reinstall", "--no-deps", str(pmap)],
             work / f"install-pmap-{top.name}.log")
    if ran.code:
        sys.exit(f"installing pytest-pmap from {pmap} failed:\n{ran.out[-2000:]}")
    return tree, bin_, version


def copy_source(source: Path, work: Path) -> Path:
    """A copy of the pytest-pmap checkout, so that building it writes nothing into the checkout."""
    copy = work / "pmap-source"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache"))
    return copy


def outcomes(output: str) -> tuple[list[str], list[str]]:
    """From the `-rfE` summary: the tests that failed or errored, and the modules that did not collect."""
    tests: list[str] = []
    modules: list[str] = []
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("FAILED", "ERROR") and rest:
            nodeid = rest.split(" - ")[0].strip()
            (tests if "::" in nodeid else modules).append(nodeid)
    return tests, modules


ROW = re.compile(r"^\s*(?P<base>\S+)\s+(?P<now>\S+)\s+(?P<change>\S+)\s+(?P<allowed>\S+)(?:\s+(?P<used>\d+%|n/a))?"
                 r"  (?P<nodeid>\S.*?)(?:  \(widened: (.*?)\))?(?:  \[(\w+)\])?$")


def flagged(bin_: Path, base: Path, head: Path, ns: argparse.Namespace, log: Path) -> list[str]:
    """The tests `pytest-pmap compare` flags in `head` against `base`."""
    code, _, _, out = sh([str(bin_ / "pytest-pmap"), "compare", str(base), str(head), "--metric", ns.metric,
                          "--tolerance", ns.tolerance], log)
    if code not in (0, 1):
        sys.exit(f"pytest-pmap compare failed:\n{out}")
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.split()[:2] == ["baseline", "now"]), len(lines))
    names = []
    for line in lines[start + 1:]:
        if line.strip().startswith(("new:", "...", "confirmed ", "not confirmed", "next:", "accepted", "tolerance")):
            continue
        m = ROW.match(line)
        if not m or m["base"][0] not in "+-0n":
            break
        names.append(m["nodeid"])
    if (code == 1) != bool(names):
        sys.exit(f"could not read the regressions from {log}")
    unconfirmed = re.compile(r"\d+ (not confirmed, noise|could not be run again)")
    NOISE[log] = sum(int(line.split()[0]) for line in lines if unconfirmed.match(line))
    return names


NOISE: dict[Path, int] = {}
"""Per compare log: the suspects that the repeats did not confirm (or could not be repeated)."""


def load(path: Path) -> dict[str, dict[str, Any]]:
    return {r["nodeid"]: r for r in json.loads(path.read_text())["results"]}


def run_mode(name: str, tree: Path, bin_: Path, ns: argparse.Namespace, workers: int) -> dict[str, Any]:
    tag = f"{name}-n{workers}" if workers else name
    out = ns.work / "runs" / tag
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ns.work / "plugin")}
    nice = ["nice", "-n", str(ns.nice)] if ns.nice else []
    base_cmd = [*nice, str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    base_cmd += ["-n", str(workers)] if workers else []
    warm = sh([*base_cmd, "--continue-on-collection-errors"], out / "warmup.log", tree, env)
    failing, broken = outcomes(warm.out)
    skip = [a for m in broken for a in ("--ignore", m)] + [a for t in failing for a in ("--deselect", t)]
    pytest = [*base_cmd, *skip, *ns.pmap_option]
    plain = sh([*pytest, "--pmap"], out / "plain.log", tree, env)
    baseline = out / "baseline.json"
    saved = sh([*pytest, f"--pmap-save-baseline={baseline}"], out / "baseline.log", tree, env)
    if not baseline.exists():
        sys.exit(f"{tag}: no baseline saved (exit status {saved.code}); see {out / 'baseline.log'}")
    base = load(baseline)
    # PATH=VALUE: pytest finds its rootdir before plugins add their options, and takes a separate
    # value that is an existing path for a test path: a baseline outside the suite moves rootdir,
    # drops the suite's configuration and renames every test (so the gate compares nothing).
    gate = [f"--pmap-baseline={baseline}", f"--pmap-metric={ns.metric}", f"--pmap-tolerance={ns.tolerance}"]
    quiet = sorted(n for n, r in base.items() if r["peak_growth"] is not None and r["peak_growth"] < QUIET)
    target = ns.leak_test or (quiet or sorted(base))[0]
    stats: dict[str, Any] = {"tests": len(base), "left out": len(failing) + len(broken), "plain": plain,
                             "gating": [], "false": 0, "per run": [], "test failures": 0, "caught": 0,
                             "noise": [], "leaks": {},
                             "cost plain": [], "cost gate": [], "target": target, "seen": Counter(), "rows": {}}
    kinds: list[tuple[str, dict[str, str]]] = [("steady", {})] * ns.runs
    for size in [] if workers and ns.leak_serial_only else ns.leak:
        kinds += [(f"leak{size >> 10}K", {"GATE_SUITE_LEAK_TEST": target, "GATE_SUITE_LEAK_SIZE": str(size)})] * ns.runs
    for i, (kind, extra) in enumerate(kinds):
        head = out / f"{kind}-{i}.json"
        plugin = ["-p", "gate_suite_leak"] if extra else []
        ran = sh([*pytest, *plugin, *gate, f"--pmap-json={head}"], out / f"{kind}-{i}.log", tree, {**env, **extra})
        if not head.exists():
            sys.exit(f"{tag}: run {i} wrote no results (exit status {ran.code}); see {out / f'{kind}-{i}.log'}")
        names = flagged(bin_, baseline, head, ns, out / f"{kind}-{i}.compare")
        tests_failed = any(outcomes(ran.out))
        stats["test failures"] += tests_failed
        if ran.code != 0 and not names and not tests_failed:
            print(f"  {tag} run {i}: exit status {ran.code} with no regression and no failing test", file=sys.stderr)
        now = load(head)
        if len(now.keys() & base.keys()) < len(base) / 2:
            sys.exit(f"{tag}: run {i} and the baseline share few test names; see {out / f'{kind}-{i}.compare'}")
        if kind == "steady":
            stats["gating"].append(ran)
            stats["false"] += bool(names)
            stats["per run"].append(len(names))
            stats["noise"].append(NOISE.get(out / f"{kind}-{i}.compare", 0))
            for n in names:
                stats["seen"][n] += 1
                stats["rows"].setdefault(n, []).append((base[n], now[n]))
        else:
            leak = stats["leaks"].setdefault(kind, Counter())
            leak["runs"] += 1
            leak["caught"] += target in names
            leak["alone"] += names == [target]
        if VERBOSE:
            print(f"  {tag} {kind} run {i}: {ran.wall:.1f} s, exit {ran.code}, flagged {len(names)}: {names[:4]}")
    # The cost, in rounds that interleave a plain --pmap run and a gating run, so that what else
    # the machine does falls on both alike.
    for i in range(ns.cost_rounds):
        stats["cost plain"].append(sh([*pytest, "--pmap"], out / f"cost-plain-{i}.log", tree, env))
        stats["cost gate"].append(sh([*pytest, *gate], out / f"cost-gate-{i}.log", tree, env))
    return stats


def value(r: dict[str, Any], metric: str) -> int | None:
    found: int | None = r["peak_growth"] if metric == "peak_growth" else r["growth"].get(metric[: -len("_growth")])
    return found


def region(r: dict[str, Any]) -> str:
    return f"{r['size'] >> 10}K {r['mode']} {r['name']}"


def report(name: str, version: str, mode: str, s: dict[str, Any], ns: argparse.Namespace) -> None:
    runs, per = len(s["gating"]), s["per run"] or [0]
    wall = statistics.median(r.wall for r in s["gating"]) if runs else float("nan")
    used = statistics.median(r.cpu for r in s["gating"]) if runs else float("nan")
    print(f"\n{name} {version}, {mode}: {s['tests']} tests measured ({s['left out']} failing tests or "
          f"uncollectable modules left out), metric {ns.metric}, tolerance {ns.tolerance}")
    print(f"  {'runs':<42}{runs}")
    print(f"  {'runs with a false alarm':<42}{s['false']} of {runs}")
    print(f"  {'tests flagged per run (min-max)':<42}{min(per)}-{max(per)}")
    print(f"  {'runs where a test of the suite failed':<42}{s['test failures']}")
    noise = s["noise"] or [0]
    print(f"  {'suspects not confirmed per run (min-max)':<42}{min(noise)}-{max(noise)}")
    for kind, leak in s["leaks"].items():
        print(f"  {'leak of ' + kind[4:] + 'iB per call caught and named':<42}{leak['caught']} of {leak['runs']} "
              f"({leak['alone']} flagged the leaking test alone)  in {s['target']}")
    if s["cost gate"]:  # interleaved rounds: the figure to trust
        rounds = len(s["cost gate"])
        for what in ("wall", "cpu"):
            plain = statistics.median(getattr(r, what) for r in s["cost plain"])
            gating = statistics.median(getattr(r, what) for r in s["cost gate"])
            label = f"{what.replace('cpu', 'CPU')} time, plain --pmap / gating ({rounds} rounds)"
            print(f"  {label:<42}{plain:.1f} s / {gating:.1f} s = x{gating / max(plain, 1e-9):.2f}")
    else:  # one plain run against the gating runs' median: rough on a busy machine
        print(f"  {'wall time, plain --pmap / gating (median)':<42}{s['plain'].wall:.1f} s / {wall:.1f} s "
              f"= x{wall / s['plain'].wall:.2f}")
        print(f"  {'CPU time, plain --pmap / gating (median)':<42}{s['plain'].cpu:.1f} s / {used:.1f} s "
              f"= x{used / max(s['plain'].cpu, 1e-9):.2f}")
    for nodeid, times in s["seen"].most_common(ns.show):
        print(f"  flagged in {times} run(s): {nodeid}")
        for then, now in s["rows"][nodeid][:2]:
            new = Counter(region(r) for r in now["new_mappings"])
            print(f"      baseline {kib(value(then, ns.metric))} (peak {kib(then['peak_growth'])}), "
                  f"now {kib(value(now, ns.metric))} (peak {kib(now['peak_growth'])}); new: "
                  + (", ".join(f"{k} x{v}" if v > 1 else k for k, v in new.most_common(3)) or "none"))


def main() -> None:
    global VERBOSE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", action="append", metavar="NAME[==VERSION]", help=f"default: {' '.join(DEFAULT_SUITES)}")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--xdist", action="store_true", help="also run everything under -n 2")
    p.add_argument("--xdist-only", action="store_true", help="run under -n 2 only")
    p.add_argument("--leak-serial-only", action="store_true", help="leak runs serially only (steady runs in every mode)")
    p.add_argument("--leak", type=parse_size, action="append", default=[], metavar="SIZE",
                   help="also run with a retained leak of SIZE per call (may be given more than once)")
    p.add_argument("--leak-test", metavar="NODEID", help="the test that leaks (default: the first quiet one)")
    p.add_argument("--cost-rounds", type=int, default=5, metavar="N",
                   help="rounds of a plain --pmap run and a gating run, interleaved, for the cost (default 5)")
    p.add_argument("--metric", default="uss_growth")
    p.add_argument("--tolerance", default="2%,512KiB")
    p.add_argument("--pmap-source", type=Path, default=HERE.parent, metavar="PATH")
    p.add_argument("--pmap-option", action="append", default=[], metavar="OPTION",
                   help="add to every --pmap run, e.g. --pmap-option=--pmap-malloc-thresholds")
    p.add_argument("--work", type=Path, default=Path("/tmp/pytest-pmap-gate-suite"), metavar="DIR")
    p.add_argument("--nice", type=int, default=0, metavar="N", help="run the suites under nice -n N")
    p.add_argument("--show", type=int, default=5, metavar="N", help="flagged tests listed per mode (default 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every command and every run")
    ns = p.parse_args()
    VERBOSE = ns.verbose
    ns.work = ns.work.resolve()
    (ns.work / "plugin").mkdir(parents=True, exist_ok=True)
    (ns.work / "plugin" / "gate_suite_leak.py").write_text(LEAK_PLUGIN)
    pmap = copy_source(ns.pmap_source.resolve(), ns.work)
    for spec in ns.suite or DEFAULT_SUITES:
        tree, bin_, version = prepare(spec, ns.work, pmap)
        name = spec.partition("==")[0]
        for workers in (2,) if ns.xdist_only else (0, 2) if ns.xdist else (0,):
            mode = f"xdist -n {workers}" if workers else "serial"
            print(f"{name} {version}, {mode}: running ...", flush=True)
            report(name, version, mode, run_mode(name, tree, bin_, ns, workers), ns)
    print(f"\nlogs, baselines and results: {ns.work / 'runs'}")


if __name__ == "__main__":
    main()
