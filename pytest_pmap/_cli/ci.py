"""`pytest-pmap merge | trend | report`: a suite's results in CI, shards merged, history shown, one
page to look at."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import PmapError
from .output import complain, out
from .parsing import Parser

if TYPE_CHECKING:
    from .._gate.history import HistoryEntry

__all__ = ["merge_parser", "report_parser", "run_merge", "run_report", "run_trend", "trend_parser"]


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: give a whole number, 0 for all")
    return int(text)


def _not_an_input(output: str, option: str, others: list[tuple[str, Optional[str]]]) -> None:
    """Refuse a file written to (`option output`) that is one of the other files of the command
    (each `(what it is, path)`: `("the input", "a.json")`): writing it would replace or spoil it."""
    target = os.path.realpath(output)
    for what, given in others:
        if given is not None and os.path.realpath(given) == target:
            raise PmapError(f"{option} {output} is {what} {given}: writing it would "
                            f"{'spoil' if option == '--history' else 'replace'} that file; give it a name of its own")


def _missing(inputs: list[str], expected: int) -> str:
    """What `merge --expect` says when it was given `len(inputs)` files: the files missing by
    name where the inputs are named alike but for a number (`pmap-shard-2.json`), else the files given."""
    got = len(inputs)
    numbered = [re.fullmatch(r"(.*?)(\d+)(\D*)", os.path.basename(i)) for i in inputs]
    shapes = {(m.group(1), m.group(3)) for m in numbered if m}
    if got < expected and len(shapes) == 1 and all(numbered):
        (head, tail), numbers = shapes.pop(), {int(m.group(2)) for m in numbered if m}
        first = 0 if min(numbers) == 0 or max(numbers) < expected else 1
        lost = [f"{head}{n}{tail}" for n in range(first, first + expected) if n not in numbers]
        if lost and len(lost) == expected - got:
            return f"{', '.join(lost)} {'is' if len(lost) == 1 else 'are'} missing"
    return f"{'missing' if got < expected else 'more than expected'}: got {', '.join(inputs)}"


def merge_parser() -> Parser:
    p = Parser(
        prog="pytest-pmap merge",
        description="Merge results files (from --pmap-json, one per CI shard or run) into one, which "
        "--pmap-baseline, compare and report read like any run's. A test in two files is an error unless "
        "--samples keeps every measurement as a sample of its test.",
    )
    p.add_argument("inputs", metavar="RESULTS", nargs="+", help="the shards' results files")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="the merged results file to write")
    p.add_argument("--samples", action="store_true",
                   help="keep a test measured in several files as several samples of it (the file says so)")
    p.add_argument("--history", metavar="FILE", default=None,
                   help="also append the merged run to FILE, as --pmap-history does for a run (after OUT is written)")
    p.add_argument("--expect", type=_expect, default=None, metavar="N",
                   help="the number of RESULTS files there must be (one per shard): fewer or more is an error "
                   "(exit status 2) and nothing is written, so that a lost shard cannot pass as a whole suite")
    return p


def _expect(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of files: give a whole number of 1 or more")
    return int(text)


def run_merge(ns: argparse.Namespace) -> int:
    from .._gate.merge import merge_files

    if ns.expect is not None and len(ns.inputs) != ns.expect:
        complain(f"pytest-pmap merge: --expect {ns.expect} files, got {len(ns.inputs)}: "
                 f"{_missing(ns.inputs, ns.expect)}; nothing was written\n")
        return 2
    if ns.history is not None:
        from .._gate.history import check_history

        _not_an_input(ns.history, "--history", [*(("the input", i) for i in ns.inputs), ("the output", ns.output)])
        check_history(ns.history)
    merged = merge_files(ns.inputs, ns.output, samples=ns.samples)
    tests = len({r.nodeid for r in merged.results})
    what = f"{len(merged.results)} samples of {tests} tests" if merged.samples else f"{tests} tests"
    lines = [f"merged {len(ns.inputs)} files ({what}) into {ns.output}"]
    lines += [f"note: {n}" for n in merged.notes]
    if merged.complete is False:
        lines.append(f"the merged run is incomplete: {merged.incomplete_reason}")
    status = 0
    if ns.history is not None:
        from .._gate.history import append_history

        try:
            size = append_history(ns.history, merged)
        except PmapError as exc:  # OUT is written by now: say so, and that the history is not
            complain(f"pytest-pmap merge: wrote {ns.output}, but the run was not appended to the history: {exc}\n")
            status = 1
        else:
            lines.append(f"appended the run to history {ns.history} ({size:,} bytes)")
    out("".join(line + "\n" for line in lines))
    return status


def trend_parser() -> Parser:
    from .._gate.compare import DEFAULT_METRIC

    p = Parser(
        prog="pytest-pmap trend",
        description="Print each test's series from a history file (--pmap-history) with a sparkline, the tests "
        "that moved most first.",
    )
    p.add_argument("history", metavar="FILE", help="the history file")
    p.add_argument("--test", metavar="GLOB", default="*", help="only the tests whose node ID matches GLOB (* and ?)")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"the metric to show (default {DEFAULT_METRIC})")
    p.add_argument("--limit", type=_limit, default=0, metavar="N", help="at most N tests (default 0: all)")
    _last(p)
    return p


def _last(p: Parser) -> None:
    from .._gate.history import LAST_RUNS

    p.add_argument("--last", type=_limit, default=LAST_RUNS, metavar="N",
                   help=f"read only the history's last N runs, from the end of the file (default {LAST_RUNS}; 0: all)")


def _history(command: str, path: str, last: int) -> list[HistoryEntry]:
    """The runs of a history file; the lines that could not be read (cut short, edited, a time
    no date can show) are skipped, and said on stderr: the first, and how many."""
    from .._gate.history import read_history

    entries, problems = read_history(path, last)
    if problems:
        complain(f"pytest-pmap {command}: skipped {len(problems)} line{'s' if len(problems) != 1 else ''} of {path} "
                 f"that could not be read ({problems[0]})\n")
    return entries


def run_trend(ns: argparse.Namespace) -> int:
    from .._gate.compare import parse_metric
    from .._gate.trend import trend_lines

    metric = parse_metric(ns.metric, "--metric")
    entries = _history("trend", ns.history, ns.last)
    lines = trend_lines(entries, metric, ns.test, ns.limit)
    if lines is None:
        runs = f"{len(entries)} run{'s' if len(entries) != 1 else ''}"
        complain(f"pytest-pmap trend: no test matches {ns.test!r} in the {runs} read of {ns.history}\n")
        return 1
    out("".join(line + "\n" for line in lines))
    return 0


def report_parser() -> Parser:
    from .._gate.compare import DEFAULT_METRIC

    p = Parser(
        prog="pytest-pmap report",
        description="Write one self-contained HTML page (no network: style, script and charts inline) of a run's "
        "results: summary, a sortable and filterable table of tests, the top growers, history charts and each "
        "failing test's pmap diff. Several RESULTS files are merged first, as merge does.",
    )
    p.add_argument("inputs", metavar="RESULTS", nargs="+", help="results files (--pmap-json, or merged)")
    p.add_argument("-o", "--output", metavar="FILE.html", required=True, help="the page to write")
    p.add_argument("--history", metavar="FILE", default=None, help="a history file (--pmap-history): line charts")
    p.add_argument("--baseline", metavar="FILE", default=None, help="a baseline: each test's change against it")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"the metric compared (default {DEFAULT_METRIC})")
    p.add_argument("--tolerance", default=None, help="a percentage, a size or both, e.g. '2%%,512KiB' (the default)")
    p.add_argument("--samples", action="store_true", help="merge a test found in several RESULTS files as samples")
    _last(p)
    return p


def run_report(ns: argparse.Namespace) -> int:
    from .._gate.accept import project_accept
    from .._gate.compare import Tolerance, compare, parse_metric
    from .._gate.html import render_html
    from .._gate.merge import load_inputs, merge
    from .._gate.reports import write_report
    from .._gate.results import RunResults

    _not_an_input(ns.output, "-o", [*(("the input", i) for i in ns.inputs), ("the history", ns.history),
                                     ("the baseline", ns.baseline)])
    metric = parse_metric(ns.metric, "--metric")
    tolerance = Tolerance() if ns.tolerance is None else Tolerance.parse(ns.tolerance, "--tolerance")
    inputs = load_inputs(ns.inputs)
    run = inputs[0][1] if len(inputs) == 1 else merge(inputs, samples=ns.samples)
    comparison = None
    if ns.baseline is not None:
        base = RunResults.load(ns.baseline, "baseline file", allow_empty=True)
        accept, accept_source, used = project_accept()
        if used:
            out(used + "\n")
        comparison = compare(base, run, metric, tolerance, f"baseline {Path(ns.baseline).name}",
                             accept=accept, accept_source=accept_source, update=f"cp {ns.inputs[0]} {ns.baseline}"
                             if len(ns.inputs) == 1 else "")
    history = _history("report", ns.history, ns.last) if ns.history is not None else None
    page = render_html(run, comparison, history, metric=metric)
    done = write_report(ns.output, page)
    tests = len({r.nodeid for r in run.results})
    what = f"{tests} tests, {len(run.results)} samples" if len(run.results) != tests else f"{tests} tests"
    out(f"{done} report {ns.output} ({what}, {len(page):,} bytes)\n")
    return 0
