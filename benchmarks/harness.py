"""What the benchmarks share: checkouts installed as `pip install .` installs them, child processes
timed by the kernel's own accounting, and interleaved rounds.

A benchmark compares this checkout with an older one (`--baseline-ref GIT_REF`) in one run: both
are installed side by side, and their measurements are taken in interleaved rounds, so a noisy
neighbour on a shared machine hits both alike. Every figure is a median over the rounds.

An installed checkout is a fresh virtualenv made from this Python, with pytest and its
dependencies copied from this environment, the checkout's package byte-compiled in its
site-packages, a dist-info with its entry points (so pytest loads the plugin and marks its
modules for assertion rewriting exactly as it does for a wheel), and pip's console-script wrapper
for `pytest-pmap`. Running a checkout in place instead would charge it for compiling its modules
on every run when PYTHONDONTWRITEBYTECODE is set, and for whatever this environment's .pth files
import at start-up.
"""

from __future__ import annotations

import compileall
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TypeVar

REPO = Path(__file__).resolve().parent.parent
#: What pytest needs at run time, copied into every installed checkout.
DEPENDENCIES = ("pytest", "pluggy", "iniconfig", "packaging", "pygments", *(("tomli",) if sys.version_info < (3, 11) else ()))

#: What pip writes as the `pytest-pmap` console script.
CONSOLE_SCRIPT = """#!{python}
import re
import sys
from pytest_pmap.cli import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""
ENTRY_POINTS = "[console_scripts]\npytest-pmap = pytest_pmap.cli:main\n\n[pytest11]\npmap = pytest_pmap.plugin\n"


@dataclass(frozen=True)
class Installed:
    """One checkout, installed."""

    label: str
    """How the reports name it: `this checkout` or the git ref."""
    python: Path
    """The virtualenv's Python."""
    command: Path
    """Its `pytest-pmap` console script."""
    source: Path
    """The folder holding its `pytest_pmap` package (and tests/helpers)."""


def checkout(ref: str, where: Path) -> Path:
    """The files of git `ref` of this repository, extracted into `where` (no work tree is touched)."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def install(source: Path, where: Path, label: str) -> Installed:
    """The checkout in `source` installed into a new virtualenv at `where`."""
    venv.create(where, symlinks=True, with_pip=False)
    python = where / "bin" / "python"
    site = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for name in DEPENDENCIES:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # scripts outside site-packages; byte code is compiled below
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
    package = site / "pytest_pmap"
    shutil.copytree(source / "pytest_pmap", package, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "pytest_pmap-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-pmap\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (info / "top_level.txt").write_text("pytest_pmap\n")
    files = sorted(str(p.relative_to(site)) for p in package.rglob("*") if p.is_file())
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, *(f"{info.name}/{n}" for n in (
        "METADATA", "entry_points.txt", "top_level.txt", "RECORD"))]))
    if not compileall.compile_dir(site, quiet=1):
        raise SystemExit(f"could not byte-compile {site}")
    command = where / "bin" / "pytest-pmap"
    command.write_text(CONSOLE_SCRIPT.format(python=python))
    command.chmod(0o755)
    return Installed(label, python, command, source)


def installs(scratch: Path, baseline_ref: Optional[str]) -> list[Installed]:
    """This checkout installed, and before it the baseline ref when one is given."""
    found = []
    if baseline_ref:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", baseline_ref],
                             capture_output=True, text=True, check=True).stdout.strip()
        source = checkout(baseline_ref, scratch / "before-src")
        found.append(install(source, scratch / "before", f"before ({baseline_ref} = {sha})" if sha != baseline_ref
                             else f"before ({sha})"))
    found.append(install(REPO, scratch / "after", "this checkout"))
    return found


@dataclass(frozen=True)
class Usage:
    """What one child process cost, as the kernel accounted it."""

    wall: float
    """Seconds from start to exit."""
    cpu: float
    """User and system CPU seconds of the child (and of its own children, once reaped)."""
    max_rss: int
    """Peak resident set size, KiB."""
    stdout: str


def run(argv: Sequence[str | os.PathLike[str]], *, env: Optional[dict[str, str]] = None,
        cwd: Optional[Path] = None, check: bool = True) -> Usage:
    """Run a command to its end; its own CPU time and peak RSS come from wait4()."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} exited with status {proc.returncode}")
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out.decode(errors="replace"))


_K = TypeVar("_K", bound=Hashable)
_T = TypeVar("_T")


def interleaved(contenders: Mapping[_K, Callable[[], _T]], rounds: int, warmup: int = 1) -> dict[_K, list[_T]]:
    """Every contender once per round, in turn (the order rotated each round); what each gave, by name."""
    names = list(contenders)
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    got: dict[_K, list[_T]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            got[name].append(contenders[name]())
    return got


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load() -> str:
    """The load averages, as `uptime` shows them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
