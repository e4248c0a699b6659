"""Reports of a run for people and for tools: a pull-request summary in Markdown, Bencher Metric
Format, and github-action-benchmark's `customSmallerIsBetter` list. Pure text and dicts, plus
`write_report`, which writes a file the safe way (or appends to a GitHub step summary).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Optional

from .._engine.files import append, write_atomic
from .._measure.result import MemoryResult
from ..size import signed
from .compare import Comparison, Row
from .gatetext import accept_entry, improvements
from .results import RunResults

__all__ = ["bencher", "benchmark_action", "markdown", "write_report"]

MAX_DETAILS = 20
"""Collapsed blocks in a Markdown report: a step summary holds at most 1 MiB."""
MAX_BLOCK_LINES = 60
MAX_ROWS = 200
"""Rows of the regressions table; the rest are counted."""


def _code(nodeid: str) -> str:
    """A node ID inside a Markdown table cell."""
    return "<code>" + html.escape(nodeid).replace("|", "&#124;") + "</code>"


def _block(summary: str, text: str) -> list[str]:
    """A collapsed `<details>` block holding `text` verbatim."""
    lines = text.rstrip("\n").splitlines()
    if len(lines) > MAX_BLOCK_LINES:
        lines = [*lines[:MAX_BLOCK_LINES], f"... {len(lines) - MAX_BLOCK_LINES} more lines"]
    fence = "```"
    while any(line.lstrip().startswith(fence) for line in lines):
        fence += "`"
    return ["<details>", f"<summary>{summary}</summary>", "", fence, *lines, fence, "", "</details>", ""]


def _regions_text(result: MemoryResult) -> str:
    rows = [f"{'Address':<16} {'Kbytes':>8} Mode  Mapping"] + [r.row() for r in result.new_regions]
    return "\n".join(rows)


def markdown(run: RunResults, comparison: Optional[Comparison] = None, metric: str = "uss_growth", top: int = 10) -> str:
    """A pull-request summary: the regressions first, then the budget failures, then the top growers,
    each failure's pmap text in a collapsed block."""
    against = f", against {comparison.baseline}" if comparison is not None else ""
    out = [f"## pytest-pmap: memory per test{against}", ""]
    details = 0
    if comparison is not None:
        mark = ":white_check_mark:" if comparison.passed else ":x:"
        out += [f"{mark} **{comparison.headline()}**", ""]
        out += [f"> [!WARNING]\n> {w}\n" for w in comparison.warnings]
        regressions = comparison.regressions
        if regressions:
            out += ["### Regressions", "",
                    "| Test | Baseline | Now | Change | Allowed | Tolerance used | Evidence | Next step |",
                    "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
            out += [f"| {_code(row.nodeid)} | {signed(row.base)} | {signed(row.head)} | {signed(row.delta)} | {_allowed(row)} "
                    f"| {row.used_text} | {_cell(row.evidence) or 'one measurement'} "
                    f"| fix it, or accept: {_code(accept_entry(row.nodeid))} |"
                    for row in regressions[:MAX_ROWS]]
            if len(regressions) > MAX_ROWS:
                out.append(f"| ... and {len(regressions) - MAX_ROWS} more | | | | | | | |")
            out += ["", _next_steps(comparison), ""]
            for row in regressions:
                if row.result is not None and row.result.new_regions and details < MAX_DETAILS:
                    details += 1
                    n = row.result.new_mappings
                    out += _block(f"{_code(row.nodeid)}: {n} new mapping{'s' if n != 1 else ''}",
                                  _regions_text(row.result))
            for row in regressions:
                if row.result is not None and row.result.trace is not None and details < MAX_DETAILS:
                    details += 1
                    out += _block(f"{_code(row.nodeid)}: the Python lines that kept memory",
                                  row.result.trace.render(row.head, metric))
        accepted = comparison.having("accepted")
        if accepted:
            out += ["### Accepted increases", "", "| Test | Change | Tolerance used | Reason |", "| --- | ---: | ---: | --- |"]
            out += [f"| {_code(r.nodeid)} | {signed(r.delta)} | {r.used_text} | {_cell(r.reason)} |" for r in accepted[:MAX_ROWS]]
            out.append("")
        noise = comparison.having("noise") + comparison.having("unconfirmed")
        if noise:
            out += ["### Suspects not confirmed (not failed)", "", "| Test | Change | Status | Evidence |",
                    "| --- | ---: | --- | --- |"]
            out += [f"| {_code(r.nodeid)} | {signed(r.delta)} | {r.status} | {_cell(r.evidence)} |" for r in noise[:MAX_ROWS]]
            out.append("")
        better = improvements(comparison)
        if better:
            out += ["### Improvements", "", html.escape(better), ""]
    failed = [r for r in run.results if r.budget]
    if failed:
        out += ["### Budgets exceeded", ""]
        for r in failed:
            summary = f"{_code(r.nodeid)}: {html.escape('; '.join(r.budget))}"
            if details < MAX_DETAILS:
                details += 1
                out += _block(summary, r.failure or "\n".join(r.budget))
            elif details < MAX_DETAILS + MAX_ROWS:
                details += 1
                out += [f"- {summary}", ""]
        if details >= MAX_DETAILS + MAX_ROWS:
            out += [f"... {len(failed)} tests broke their budgets in all.", ""]
    out += _leaks(run)
    ranked = sorted((r for r in run.results if (r.value(metric) or 0) > 0), key=lambda r: r.value(metric) or 0, reverse=True)
    if ranked and top:
        out += [f"### Top {min(top, len(ranked))} by {metric}", "",
                "| Test | RSS | USS | Peak | Writable private | New mappings |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in ranked[:top]:
            out.append(f"| {_code(r.nodeid)} | {signed(r.growth.get('rss'))} | {signed(r.growth.get('uss'))} | "
                       f"{signed(r.peak_growth)} | {signed(r.growth.get('writeable_private'))} | {r.new_mappings} |")
        out.append("")
    counts = [f"{len(run.results)} tests measured (growth from each test's setup to its teardown, in KiB)"]
    if comparison is not None:
        for status, label in (("accepted", "accepted"), ("new", "new"), ("gone", "gone"), ("unmeasured", "not measured"),
                              ("improved", "improved")):
            rows = comparison.having(status)
            if rows:
                counts.append(f"{len(rows)} {label}")
    out += ["; ".join(counts) + ".", ""]
    return "\n".join(out)


def _leaks(run: RunResults) -> list[str]:
    """The "Leaks" section: every test whose repeated calls kept memory, with its series."""
    checked = [r for r in run.results if r.leak is not None]
    if not checked:
        return []
    leaking = [r for r in checked if r.leak is not None and r.leak.leaks]
    out = ["### Leaks", ""]
    if leaking:
        out += ["| Test | Per call | Calls | Series |", "| --- | ---: | ---: | --- |"]
        for r in leaking[:MAX_ROWS]:
            assert r.leak is not None
            rate = r.leak.headline().partition(" per call")[0].removeprefix("leaks ")
            series = html.escape(r.leak.headline().partition(": ")[2])
            out.append(f"| {_code(r.nodeid)} | {html.escape(rate)} per call | {r.leak.calls} | {series} |")
        out.append("")
    stopped = sum(1 for r in checked if r.leak is not None and r.leak.stopped)
    out += [f"{len(leaking)} of {len(checked)} tests checked leak"
            + (f"; the check of {stopped} stopped early" if stopped else "") + ".", ""]
    return out


def _cell(text: str) -> str:
    """Text inside a Markdown table cell."""
    return html.escape(text).replace("|", "&#124;").replace("\n", " ")


def _next_steps(comparison: Comparison) -> str:
    """What to do about the regressions, under their table."""
    update = f" (`{comparison.update}`)" if comparison.update else ""
    return ("**Next step** for each: fix the increase; or, if it is expected, acknowledge it in `pyproject.toml` "
            "under `[tool.pytest_pmap] accept` with the line shown (and a real reason), update the baseline"
            f"{update}, or loosen the tolerance (now {comparison.tolerance}).")


def _allowed(row: Row) -> str:
    return row.allowance + (f" ({row.widened})" if row.widened else "")


def bencher(run: RunResults) -> dict[str, Any]:
    """Bencher Metric Format: each test a benchmark, each gate metric a measure (bytes)."""
    out: dict[str, Any] = {}
    for r in run.results:
        measures = {name.replace("_", "-"): {"value": float(v)} for name, v in r.measured().items()}
        if measures:
            out[r.nodeid] = measures
    return out


def benchmark_action(run: RunResults, metric: str = "uss_growth") -> list[dict[str, Any]]:
    """github-action-benchmark's `customSmallerIsBetter` input: one entry per test, the gated metric in bytes."""
    entries = []
    for r in run.results:
        value = r.value(metric)
        if value is None:
            continue
        extra = f"rss {signed(r.growth.get('rss'))}, peak {signed(r.peak_growth)}, new mappings {r.new_mappings}"
        entries.append({"name": f"{r.nodeid} ({metric})", "unit": "bytes", "value": value, "extra": extra})
    return entries


def write_report(path: str | os.PathLike[str], data: bytes) -> str:
    """Write `data` to `path` atomically, or append it when `path` is the GitHub step summary
    (`$GITHUB_STEP_SUMMARY`), which collects what every command of the step writes. Returns what
    was done, for the terminal: `wrote` or `appended to`."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY", "")
    target = Path(path)
    try:
        appending = bool(summary) and os.path.exists(summary) and os.path.samefile(target, summary)
    except OSError:
        appending = False
    if not appending:
        write_atomic(target, data)
        return "wrote"
    append(target, data)
    return "appended to"
