"""A suite's memory over time: `--pmap-history FILE` appends one JSON line per run (the commit and
branch, the time, the environment and every test's figures), and `read_history` reads them back.

Each run's line is added with a single `write()` on an `O_APPEND` descriptor: runs that end at
the same moment (CI jobs sharing a file, xdist sessions side by side) never interleave, and
nothing already in the file is rewritten. A line that cannot be read (a write cut short by a
full disk, a hand edit) is skipped and counted; the lines around it still count.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Optional

from .._engine.files import append_record
from .._engine.jsonfiles import MAX_READ, decode_json, is_time
from .._engine.metrics import GATE_METRICS
from .._measure.result import MemoryResult
from ..errors import PmapError
from .results import RunResults

__all__ = [
    "COLUMNS", "LAST_RUNS", "HistoryEntry", "HistoryFileError", "append_history", "check_history", "history_line",
    "read_history", "revision",
]

FORMAT = "pytest-pmap-history"
VERSION = 1
LAST_RUNS = 30
"""How many of a history's runs `trend`, `report` and `--pmap-html` read by default (the file's last lines)."""
COLUMNS: tuple[str, ...] = (*GATE_METRICS, "new_mappings")
"""The figures kept of each test, in the order a line lists them (bytes; a count for the last)."""

#: Where CI services put the commit and the branch being built, in the order they are asked.
#: GITHUB_HEAD_REF is a pull request's branch (GITHUB_REF_NAME is then `123/merge`).
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "CIRCLE_SHA1", "GIT_COMMIT")
BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BUILDKITE_BRANCH", "CIRCLE_BRANCH",
                    "GIT_BRANCH")
_MARK = b'{"format":"' + FORMAT.encode() + b'"'


class HistoryFileError(PmapError):
    """A history file cannot be read, holds no run, or is not a history file."""


@dataclass(frozen=True)
class HistoryEntry:
    """One run of the suite, as its line in a history file keeps it."""

    time: float
    """When the run ended (seconds since the epoch)."""
    commit: str = ""
    branch: str = ""
    complete: Optional[bool] = None
    environment: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = COLUMNS
    """What each test's figures are, in order (`uss_growth`, ..., `new_mappings`)."""
    tests: dict[str, list[Any]] = field(default_factory=dict)
    """Node ID -> its figures in `columns` order, as the line holds them (read them with `figure`)."""

    def figure(self, nodeid: str, column: str) -> Optional[int]:
        """A test's value of a column in this run; None where the test or the value is missing."""
        values = self.tests.get(nodeid)
        if values is None or column not in self.columns:
            return None
        value = values[self.columns.index(column)]
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def column(self, column: str) -> dict[str, Optional[int]]:
        """Every test's value of a column in this run (the fast way to read many)."""
        if column not in self.columns:
            return dict.fromkeys(self.tests)
        index = self.columns.index(column)
        return {n: v[index] if type(v[index]) is int else None for n, v in self.tests.items()}

    @property
    def label(self) -> str:
        """How to name the run: `2024-05-01 12:00 a1b2c3d main`."""
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.time))
        return " ".join(part for part in (when, self.commit[:7], self.branch) if part)


def revision(environ: Mapping[str, str], cwd: Optional[str] = None) -> tuple[str, str]:
    """(commit, branch) of the code being measured: from the CI's variables where it sets them,
    else from git in `cwd`; "" for what neither says."""
    commit = next((environ[v] for v in COMMIT_VARIABLES if environ.get(v)), "")
    branch = next((environ[v] for v in BRANCH_VARIABLES if environ.get(v)), "")
    if not commit:
        commit = _git(cwd, "rev-parse", "HEAD")
    if not branch:
        branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
        branch = "" if branch == "HEAD" else branch  # a detached head has no branch
    return commit, branch


def _git(cwd: Optional[str], *args: str) -> str:
    """git's answer, or "" where there is no git or no repository."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _figures(results: list[MemoryResult]) -> list[Optional[int]]:
    """A test's figures in `COLUMNS` order; of several samples, the median of each."""
    row: list[Optional[int]] = []
    for column in COLUMNS:
        values = [r.new_mappings if column == "new_mappings" else r.value(column) for r in results]
        known = [v for v in values if v is not None]
        row.append(round(statistics.median(known)) if known else None)
    return row


def history_line(run: RunResults, commit: str = "", branch: str = "") -> bytes:
    """The line `run` adds to a history file: one JSON object and a newline."""
    by_test: dict[str, list[MemoryResult]] = {}
    for result in run.results:
        by_test.setdefault(result.nodeid, []).append(result)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "time": run.created_at,
        "commit": commit,
        "branch": branch,
        "complete": run.complete,
        "environment": dict(vars(run.environment).items()),
        "columns": list(COLUMNS),
        "tests": {nodeid: _figures(results) for nodeid, results in by_test.items()},
    }
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def check_history(path: str | os.PathLike[str]) -> None:
    """Check, before anything is measured or written, that a run can be appended to the history
    file at `path` later: it is not a folder, its folder exists, and it is absent, empty or a
    history file (a line appended to a baseline or a report would spoil that file). Raises
    `HistoryFileError` saying what is wrong. `--pmap-history` and `merge --history` both ask it."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise HistoryFileError(f"{name} is a folder; name the history file")
    folder = os.path.dirname(name) or "."
    if not os.path.isdir(folder):
        raise HistoryFileError(f"the folder {folder} of {name} does not exist")
    try:
        with open(name, "rb") as f:
            start = f.read(64).lstrip()
    except FileNotFoundError:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HistoryFileError(f"cannot create {name}: its folder {folder} is not writable") from None
        return
    except OSError as exc:
        raise HistoryFileError(f"cannot read {name}: {exc.strerror}") from None
    if start and not start.startswith(_MARK):
        raise HistoryFileError(f"{name} is not a pytest-pmap history file (its first line is not a run's); "
                               "appending to it would mix a history into another file: name a new file")
    if not os.access(name, os.W_OK):
        raise HistoryFileError(f"cannot append to {name}: permission denied (the file is not writable to you)")


def append_history(path: str | os.PathLike[str], run: RunResults, cwd: Optional[str] = None) -> int:
    """Append `run`'s line to the history file at `path` in one write; returns its size in bytes."""
    commit, branch = revision(os.environ, cwd)
    line = history_line(run, commit, branch)
    append_record(path, line)
    return len(line)


def read_history(path: str | os.PathLike[str], last: int = 0) -> tuple[list[HistoryEntry], list[str]]:
    """The runs in a history file, oldest first, and what could not be read (`line 7: ...`).
    `last` > 0 reads only the file's last `last` lines, found from its end: the rest is neither
    read nor parsed (a history only grows). A file that cannot be read, or holds no run, raises
    `HistoryFileError` naming it."""
    name = f"history file {os.fspath(path)!r}"
    try:
        with open(path, "rb") as f:
            if last > 0 and os.fstat(f.fileno()).st_size:
                lines, first = _tail(f, last, name)
            else:
                raw = f.read(MAX_READ + 1)
                if len(raw) > MAX_READ:
                    raise HistoryFileError(f"{name} is more than the {MAX_READ:,} bytes a pytest-pmap file may be; "
                                           "read its last runs (--last N), or keep fewer (tail -n)")
                lines, first = raw.splitlines(), 1
    except FileNotFoundError:
        raise HistoryFileError(f"{name} does not exist (runs with --pmap-history {os.fspath(path)} write it)") from None
    except IsADirectoryError:
        raise HistoryFileError(f"{name} is a folder, not a file") from None
    except OSError as exc:
        raise HistoryFileError(f"cannot read {name}: {exc.strerror}") from None
    entries: list[HistoryEntry] = []
    problems: list[str] = []
    for number, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            entries.append(_entry(line))
        except (ValueError, TypeError, KeyError) as exc:
            # A line cut short, then a whole line appended to it: the whole one is still there.
            start = line.rfind(_MARK)
            if start > 0:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    entries.append(_entry(line[start:]))
            where = f"line {number}" if number > 0 else f"line {-number} from the end"
            problems.append(f"{where}: {exc}")
    if not entries:
        why = f" ({problems[0]})" if problems else ""
        raise HistoryFileError(f"{name} holds no run{why}: is it a pytest-pmap history file?")
    entries.sort(key=lambda e: e.time)
    return entries, problems


def _tail(f: BinaryIO, count: int, name: str) -> tuple[list[bytes], int]:
    """The last `count` lines that are not blank, read backwards from the end of `f` in growing
    blocks, and the number to give the first of them: its line number when the whole file was
    read, else minus its place from the end (`-3`: the third line from the end)."""
    end = f.seek(0, os.SEEK_END)
    position, block, data = end, 1 << 16, b""
    while position > 0:
        step = min(block, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
        if len(data) > MAX_READ:
            raise HistoryFileError(f"{name}: its last {count} lines are more than the {MAX_READ:,} bytes a "
                                   "pytest-pmap file may be")
        # Enough when `count` whole lines follow the first newline in hand (what precedes it may be
        # the end of a line that starts further back).
        cut = data.find(b"\n")
        if cut >= 0 and sum(1 for line in data[cut + 1:].splitlines() if line.strip()) >= count:
            break
        block *= 2
    lines = data.splitlines() if position == 0 else data[data.find(b"\n") + 1:].splitlines()
    kept = [line for line in lines if line.strip()]
    if position == 0 and len(kept) <= count:  # the whole file after all: its own line numbers
        return lines, 1
    return kept[-count:], -len(kept[-count:])


def _entry(line: bytes) -> HistoryEntry:
    data = decode_json(line)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a pytest-pmap history line")
    if data.get("version") != VERSION:
        raise ValueError(f"a version {data.get('version')!r} line; this pytest-pmap reads version {VERSION}")
    if not is_time(data["time"]):  # shown as a date by `trend` and `report`
        raise ValueError(f"\"time\" is {data['time']!r:.40}, not a time")
    columns = tuple(str(c) for c in data["columns"])
    tests = data["tests"]
    if not isinstance(tests, dict):
        raise TypeError("\"tests\" is not an object")
    width = len(columns)
    for nodeid, values in tests.items():
        if type(values) is not list or len(values) != width:
            raise TypeError(f"the figures of {nodeid!r} do not match the columns")
    complete = data.get("complete")
    environment = data.get("environment")
    return HistoryEntry(float(data["time"]), str(data.get("commit") or ""), str(data.get("branch") or ""),
                        complete if isinstance(complete, bool) else None,
                        environment if isinstance(environment, dict) else {}, columns, tests)
