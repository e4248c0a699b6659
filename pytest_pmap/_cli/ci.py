"""`pytest-pmap merge | trend | report`: a suite's results in CI, shards merged, history shown, one
page to look at."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

from ..errors import PmapError
from .output import complain, out
from .parsing import Parser

__all__ = ["merge_parser", "report_parser", "run_merge", "run_report", "run_trend", "trend_parser"]


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: give a whole number, 0 for all")
    return int(text)


def _not_an_input(output: str, option: str, inputs: list[Optional[str]]) -> None:
    """Refuse an output file that is one of the inputs: writing it would replace what was read."""
    target = os.path.realpath(output)
    for given in inputs:
        if given is not None and os.path.realpath(given) == target:
            raise PmapError(f"{option} {output} is the input {given}: writing it would replace that file; "
                            "give the output a name of its own")


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
                   help="also append the merged run to FILE, as --pmap-history does for a run")
    return p


def run_merge(ns: argparse.Namespace) -> int:
    from .._gate.merge import merge_files

    if ns.history is not None:
        _not_an_input(ns.history, "--history", [*ns.inputs, ns.output])
    merged = merge_files(ns.inputs, ns.output, samples=ns.samples)
    tests = len({r.nodeid for r in merged.results})
    what = f"{len(merged.results)} samples of {tests} tests" if merged.samples else f"{tests} tests"
    lines = [f"merged {len(ns.inputs)} files ({what}) into {ns.output}"]
    lines += [f"note: {n}" for n in merged.notes]
    if merged.complete is False:
        lines.append(f"the merged run is incomplete: {merged.incomplete_reason}")
    if ns.history is not None:
        from .._gate.history import append_history

        size = append_history(ns.history, merged)
        lines.append(f"appended the run to history {ns.history} ({size:,} bytes)")
    out("".join(line + "\n" for line in lines))
    return 0


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
    return p


def run_trend(ns: argparse.Namespace) -> int:
    from .._gate.compare import parse_metric
    from .._gate.history import read_history
    from .._gate.trend import trend_lines

    metric = parse_metric(ns.metric, "--metric")
    entries, problems = read_history(ns.history)
    if problems:
        complain(f"pytest-pmap trend: skipped {len(problems)} line{'s' if len(problems) != 1 else ''} of {ns.history} "
                 f"that could not be read ({problems[0]})\n")
    out("".join(line + "\n" for line in trend_lines(entries, metric, ns.test, ns.limit)))
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
    return p


def run_report(ns: argparse.Namespace) -> int:
    from .._gate.accept import read_accept
    from .._gate.compare import Tolerance, compare, parse_metric
    from .._gate.history import read_history
    from .._gate.html import render_html
    from .._gate.merge import load_inputs, merge
    from .._gate.reports import write_report
    from .._gate.results import RunResults

    _not_an_input(ns.output, "-o", [*ns.inputs, ns.history, ns.baseline])
    metric = parse_metric(ns.metric, "--metric")
    tolerance = Tolerance() if ns.tolerance is None else Tolerance.parse(ns.tolerance, "--tolerance")
    inputs = load_inputs(ns.inputs)
    run = inputs[0][1] if len(inputs) == 1 else merge(inputs, samples=ns.samples)
    comparison = None
    if ns.baseline is not None:
        base = RunResults.load(ns.baseline, "baseline file", allow_empty=True)
        accept, accept_source = read_accept(Path("pyproject.toml"))
        comparison = compare(base, run, metric, tolerance, f"baseline {Path(ns.baseline).name}",
                             accept=accept, accept_source=accept_source, update=f"cp {ns.inputs[0]} {ns.baseline}"
                             if len(ns.inputs) == 1 else "")
    history = read_history(ns.history)[0] if ns.history is not None else None
    page = render_html(run, comparison, history, metric=metric)
    done = write_report(ns.output, page)
    out(f"{done} report {ns.output} ({len(run.results)} tests, {len(page):,} bytes)\n")
    return 0
