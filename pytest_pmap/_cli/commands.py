"""`pytest-pmap snapshot | show | diff | watch | tree | compare`: snapshots and results files from the command
line (`merge`, `trend` and `report`, for CI, are in `ci`)."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .._engine.acquire import check_pid, check_same_process, snapshot
from .._engine.diff import MapDiff, other_process
from .._engine.procfs import default_procfs
from .._engine.render.text import pmap_bytes
from .._engine.snapshot import Snapshot
from .._engine.tree import TreeSnapshot, load_snapshot, snapshot_tree
from ..errors import PmapError, PmapWarning
from ..size import signed
from .ci import merge_parser, report_parser, run_merge, run_report, run_trend, trend_parser
from .output import WriteError, complain, out
from .parsing import Parser as _Parser

__all__ = ["COMMANDS", "Command", "run", "usage"]


def _digits(text: str) -> bool:
    """True for a decimal number in ASCII digits (`str.isdigit` also takes `²` and `１２`)."""
    return text.isascii() and text.isdigit()


def _pid(text: str) -> int:
    if not _digits(text) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a PID (a positive decimal number)")
    try:
        return check_pid(int(text), default_procfs())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval: give seconds between 0.01 and 86400")
    return value


def _count(text: str) -> int:
    if not _digits(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: give a whole number of 1 or more")
    return int(text)


def _load(source: str, tree: bool = False) -> Snapshot:
    """A snapshot from a file (of a process or a tree), or a fresh one of a live PID (its tree with `tree`)."""
    if _digits(source) and not os.path.exists(source):
        try:
            pid = _pid(source)
        except argparse.ArgumentTypeError as exc:
            raise PmapError(f"{source!r} is neither a snapshot file nor a PID: {exc}") from None
        return snapshot_tree(pid) if tree else snapshot(pid)
    return load_snapshot(source)


def _formats(parser: argparse.ArgumentParser, choices: tuple[str, ...], default: Optional[str]) -> None:
    group = parser.add_mutually_exclusive_group()
    for fmt in choices:
        flag = "-" + fmt if fmt != "default" else "--default"
        group.add_argument(flag, dest="fmt", action="store_const", const=fmt, help=f"pmap {flag} columns")
    parser.set_defaults(fmt=default)


def _snapshot_parser() -> _Parser:
    p = _Parser(prog="pytest-pmap snapshot", description="Save a process's memory map to a JSON snapshot file.")
    p.add_argument("pid", type=_pid, metavar="PID", help="the process (a thread ID means its process)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the snapshot (a file, or a device, FIFO or /dev/stdout to write through)")
    p.add_argument("--maps-only", action="store_true", help="read maps + smaps_rollup only: cheaper, no per-mapping Rss")
    p.add_argument("--tree", action="store_true", help="the process and all its descendants, in one file")
    return p


def _snapshot(ns: argparse.Namespace) -> int:
    snap = (snapshot_tree if ns.tree else snapshot)(ns.pid, detail=not ns.maps_only)
    path = snap.save(ns.output)
    if isinstance(snap, TreeSnapshot):
        count = len(snap.processes)
        what = f"the tree of PID {snap.pid} ({count} process{'es' if count != 1 else ''}, "
    else:
        what = f"PID {snap.pid} ("
    done = f"pytest-pmap: saved {what}{len(snap.mappings)} mappings, mapped {snap.mapped}) to {path}\n"
    if _is_stdout(path):  # the snapshot went to stdout: keep it pure JSON
        complain(done)
    else:
        out(done)
    return 0


def _is_stdout(path: os.PathLike[str]) -> bool:
    """True when `path` is the file our standard output writes to (`-o /dev/stdout`, `-o out.json > out.json`)."""
    try:
        here, there = os.stat(path), os.fstat(1)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _show_parser() -> _Parser:
    p = _Parser(prog="pytest-pmap show", description="Print a saved snapshot exactly as pmap printed the process then.")
    p.add_argument("file", metavar="FILE", help="a snapshot file from `pytest-pmap snapshot` or Snapshot.save() (a tree's too)")
    _formats(p, ("default", "x", "d", "X", "XX"), None)
    p.add_argument("-q", "--quiet", action="store_true", help="no column header, no footer")
    p.add_argument("-p", "--show-path", action="store_true", help="full paths")
    return p


def _show(ns: argparse.Namespace) -> int:
    snap = load_snapshot(ns.file)
    if isinstance(snap, TreeSnapshot) and ns.fmt is None:  # a tree's table, as `pytest-pmap tree` prints it
        text = snap.table()
    else:
        text = snap.render(ns.fmt or "default", quiet=ns.quiet, show_path=ns.show_path)
    out(pmap_bytes(text))
    return 0


def _diff_parser() -> _Parser:
    p = _Parser(
        prog="pytest-pmap diff",
        description="Show what appeared, vanished or grew between two snapshots. BEFORE and AFTER are snapshot "
        "files or live PIDs (a PID is read when the command runs).",
    )
    p.add_argument("before", metavar="BEFORE", help="snapshot file or PID")
    p.add_argument("after", metavar="AFTER", help="snapshot file or PID")
    _formats(p, ("x", "d"), "x")
    p.add_argument("--top", type=_count, default=None, metavar="N", help="show only the N rows that moved the most")
    p.add_argument("--tree", action="store_true", help="read a live PID as its process tree (as a tree's file holds it)")
    return p


def _diff(ns: argparse.Namespace) -> int:
    before, after = _load(ns.before, ns.tree), _load(ns.after, ns.tree)
    why = other_process(before, after)
    if why:
        complain(f"pytest-pmap diff: note: {why}\n")
    with warnings.catch_warnings():  # the note above says what the library's warning says
        warnings.simplefilter("ignore", PmapWarning)
        diff = MapDiff.between(before, after)
    out(pmap_bytes(diff.render(ns.fmt, limit=ns.top)))
    return 0


def _watch_parser() -> _Parser:
    p = _Parser(
        prog="pytest-pmap watch",
        description="Print pmap -d's summary line of a process again and again, with the change since the "
        "line before. Ends when the process exits, after COUNT lines, or on Ctrl-C.",
    )
    p.add_argument("pid", type=_pid, metavar="PID")
    p.add_argument("--tree", action="store_true", help="the process and all its descendants, summed")
    p.add_argument("-n", "--interval", type=_seconds, default=2.0, metavar="SECONDS", help="time between lines (default 2)")
    p.add_argument("-c", "--count", type=_count, default=None, metavar="COUNT", help="stop after COUNT lines")
    return p


def _watch(ns: argparse.Namespace) -> int:
    last: Optional[Snapshot] = None
    shown = 0
    try:
        while ns.count is None or shown < ns.count:
            try:
                snap = snapshot_tree(ns.pid, detail=False) if ns.tree else snapshot(ns.pid, detail=False)
                if last is not None:
                    check_same_process(last, snap)
            except PmapError as exc:
                if last is None:
                    raise
                out(f"pytest-pmap watch: {exc}\n")
                return 0
            t = snap.totals
            line = f"mapped: {t.mapped.kib}K    writeable/private: {t.writeable_private.kib}K    shared: {t.shared.kib}K"  # type: ignore[union-attr]
            if last is not None:
                g = t - last.totals
                line += f"    ({signed(g.mapped)} / {signed(g.writeable_private)} / {signed(g.shared)})"
            if isinstance(snap, TreeSnapshot):
                line += f"    processes: {len(snap.processes)}"
            out(f"{time.strftime('%H:%M:%S')}  {line}\n")
            last = snap
            shown += 1
            if ns.count is None or shown < ns.count:
                time.sleep(ns.interval)
    except KeyboardInterrupt:
        return 130
    return 0


def _tree_parser() -> _Parser:
    p = _Parser(
        prog="pytest-pmap tree",
        description="A process and all its descendants: the per-process table (PID, PPID, RSS, PSS, USS, command), "
        "the tree's totals, and unique: the resident memory of the tree that no other process maps, each page "
        "counted once (root only; elsewhere use PSS). With -x, -d, -X or -XX, every process of the tree as "
        "`pmap -x PID1 PID2 ...` prints them.",
    )
    p.add_argument("pid", type=_pid, metavar="PID", help="the root of the tree (a thread ID means its process)")
    _formats(p, ("x", "d", "X", "XX", "default"), None)
    p.add_argument("-q", "--quiet", action="store_true", help="with a format: no column header, no footer")
    p.add_argument("-p", "--show-path", action="store_true", help="with a format: full paths")
    return p


def _tree(ns: argparse.Namespace) -> int:
    if ns.fmt is None:
        text = snapshot_tree(ns.pid).table()
    else:
        tree = snapshot_tree(ns.pid, detail=ns.fmt in ("x", "X", "XX"), unique=False)
        text = tree.render(ns.fmt, quiet=ns.quiet, show_path=ns.show_path)
    out(pmap_bytes(text))
    return 0


def _compare_parser() -> _Parser:
    from .._gate.compare import DEFAULT_METRIC

    p = _Parser(
        prog="pytest-pmap compare",
        description="Compare two runs' results files (from --pmap-json or --pmap-save-baseline), as the "
        "--pmap-baseline gate does. Exit status: 0 when no test regressed, 1 when one did, 2 on bad input.",
    )
    p.add_argument("base", metavar="BASE", help="the baseline's results file")
    p.add_argument("head", metavar="HEAD", help="the results file of the run to check")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"the metric to compare (default {DEFAULT_METRIC})")
    p.add_argument("--tolerance", default=None, help="a percentage, a size or both, e.g. '2%%,512KiB' (the default)")
    p.add_argument("--markdown", metavar="FILE", default=None, help="also write the pull-request summary to FILE")
    p.add_argument("--top", type=_count, default=10, metavar="N", help="top growers in the Markdown summary (default 10)")
    p.add_argument("--allow-empty-baseline", action="store_true",
                   help="pass even when no test can be compared (BASE has no results, none of HEAD's tests, or no "
                   "value of the metric); without it that is a failure")
    p.add_argument("--allow-incomplete-baseline", action="store_true",
                   help="accept a BASE from a run that did not finish (interrupted, stopped by -x, crashed)")
    return p


def _compare(ns: argparse.Namespace) -> int:
    from .._gate.compare import Tolerance, compare, parse_metric
    from .._gate.reports import markdown, write_report
    from .._gate.results import RunResults, load_baseline

    try:
        metric = parse_metric(ns.metric, "--metric")
        tolerance = Tolerance() if ns.tolerance is None else Tolerance.parse(ns.tolerance, "--tolerance")
        base = load_baseline(ns.base, allow_empty=ns.allow_empty_baseline,
                             allow_incomplete=ns.allow_incomplete_baseline, flags="--")
        head = RunResults.load(ns.head, "results file")
        if head.samples:
            raise PmapError(f"HEAD {ns.head} holds samples of several runs (\"samples\": true): compare the results "
                            "of one run against it, or use it as BASE")
        if ns.markdown is not None:
            for given, what in ((ns.base, "BASE"), (ns.head, "HEAD")):
                if Path(ns.markdown).resolve() == Path(given).resolve():
                    raise PmapError(f"--markdown {ns.markdown} is {what} ({given}): writing it would replace "
                                    "that results file; give the summary a file of its own")
    except PmapError as exc:
        complain(f"pytest-pmap compare: {exc}\n")
        return 2
    from .._gate.accept import project_accept

    try:
        accept, accept_source, used = project_accept()  # the nearest pyproject.toml, as pytest run here finds it
    except PmapError as exc:
        complain(f"pytest-pmap compare: {exc}\n")
        return 2
    comparison = compare(base, head, metric, tolerance, f"baseline {Path(ns.base).name}", allow_ungated=ns.allow_empty_baseline,
                         accept=accept, accept_source=accept_source, update=f"cp {ns.head} {ns.base}")
    out("".join(line + "\n" for line in [*comparison.table(), *([used] if used else [])]))
    if comparison.ungated and not comparison.passed:
        complain("pytest-pmap compare: a gate that compares no test passes whatever the tests do; "
                 "to pass anyway, give --allow-empty-baseline\n")
    if ns.markdown is not None:
        try:
            write_report(ns.markdown, markdown(head, comparison, metric, ns.top).encode())
        except PmapError as exc:
            complain(f"pytest-pmap compare: {exc}\n")
            return 2
    return 0 if comparison.passed else 1


@dataclass(frozen=True)
class Command:
    """A subcommand: its parser (the one source of its usage, its --help and its line in
    `pytest-pmap help`), what it does, and its exit status when it cannot do it."""

    parser: Callable[[], _Parser]
    run: Callable[[argparse.Namespace], int]
    error_status: int = 1


#: The subcommands, in the order `pytest-pmap help` lists them.
COMMANDS = {
    "snapshot": Command(_snapshot_parser, _snapshot),
    "show": Command(_show_parser, _show),
    "diff": Command(_diff_parser, _diff),
    "watch": Command(_watch_parser, _watch),
    "tree": Command(_tree_parser, _tree),
    "compare": Command(_compare_parser, _compare, error_status=2),  # 1 means "a test regressed"
    "merge": Command(merge_parser, run_merge),
    "trend": Command(trend_parser, run_trend),
    "report": Command(report_parser, run_report),
}


def usage() -> list[tuple[str, str]]:
    """(usage line, summary) of every subcommand, from its parser."""
    return [(p.usage_line(), p.summary()) for p in (c.parser() for c in COMMANDS.values())]


def run(name: str, args: list[str]) -> int:
    """Run one subcommand; a `PmapError`, or output that cannot be written, is a one-line message
    and the command's error status (1; 2 for `compare`, whose 1 means a regression)."""
    command = COMMANDS[name]
    try:
        return command.run(command.parser().parse_args(args))
    except PmapError as exc:
        complain(f"pytest-pmap {name}: {exc}\n")
        return command.error_status
    except WriteError as exc:
        if not exc.quiet:
            complain(f"pytest-pmap {name}: write error: {exc}\n")
        return command.error_status
