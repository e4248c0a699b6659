"""The gate's verdict in words, for the terminal (`table`) and shared with the Markdown and HTML
reports: how much of its allowance each test used, what to do about a regression, which tests
were accepted and which improved."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..size import signed

if TYPE_CHECKING:
    from .compare import Comparison

__all__ = ["accept_entry", "improvements", "next_steps", "table"]


def accept_entry(nodeid: str) -> str:
    """The line of `[tool.pytest_pmap] accept` that acknowledges this test's increase."""
    return f"{json.dumps(nodeid)} = \"why it grew\""


def next_steps(comparison: Comparison) -> str:
    """What to do about the regressions, said once under their table (the first one's accept
    line as the example)."""
    update = f" ({comparison.update})" if comparison.update else ""
    first = comparison.regressions[0].nodeid if comparison.regressions else "tests/test_x.py::test_y"
    return (f"fix each increase; or, where one is expected, accept it in pyproject.toml under [tool.pytest_pmap] accept, "
            f"a line per test or glob ({accept_entry(first)}), update the baseline{update}, or loosen the tolerance "
            f"(now {comparison.tolerance})")


def improvements(comparison: Comparison, limit: int = 10) -> str:
    """The tests that improved beyond their allowance, by name, and how to keep the gain; "" when none."""
    rows = sorted(comparison.having("improved"), key=lambda r: r.delta or 0)
    if not rows:
        return ""
    named = ", ".join(f"{r.nodeid} ({signed(r.delta)})" for r in rows[:limit])
    more = f", ... {len(rows) - limit} more" if len(rows) > limit else ""
    keep = f": {comparison.update}" if comparison.update else ""
    return (f"{len(rows)} improved beyond tolerance: {named}{more}; update the baseline to keep the gain "
            f"(a later increase is then measured from there){keep}")


def table(comparison: Comparison, new_rows: int = 5) -> list[str]:
    """The comparison for a terminal."""
    lines = [comparison.headline()]
    lines += [f"WARNING: {w}" for w in comparison.warnings]
    regressions = comparison.regressions
    if regressions:
        lines.append(f"{'baseline':>10} {'now':>10} {'change':>10} {'allowed':>10} {'used':>6}  test")
        for r in regressions:
            lines.append(
                f"{signed(r.base):>10} {signed(r.head):>10} {signed(r.delta):>10} {r.allowance:>10} {r.used_text:>6}  {r.nodeid}"
                + (f"  (widened: {r.widened})" if r.widened else "")
                + (f"  [{r.metric}]" if r.metric else "")
            )
            if r.evidence:
                lines.append(f"{'':>12}{r.evidence}")
            regions = r.result.new_regions if r.result else ()
            for region in regions[:new_rows]:
                lines.append(f"{'':>12}new: {region.row()}")
            if len(regions) > new_rows:
                lines.append(f"{'':>12}... and {len(regions) - new_rows} more new mappings")
            if r.result is not None and r.result.trace is not None:  # --pmap-trace: the lines behind it
                lines += [f"{'':>12}{line}" for line in r.result.trace.render(r.head, comparison.metric).splitlines()]
        lines.append("used: the change as a share of what the test was allowed (over 100% fails)")
        lines.append(f"next: {next_steps(comparison)}")
    for r in comparison.having("accepted"):
        lines.append(f"accepted: {r.nodeid} {signed(r.delta)} ({r.used_text} of its allowance {r.allowance}): {r.reason}"
                     + (f" [{r.evidence}]" if r.evidence else ""))
    for status, label in (("noise", "not confirmed, noise: grew, but not again when run again (not failed)"),
                          ("unconfirmed", "could not be run again to confirm (not failed)"),
                          ("exempt", "not gated (tolerance off)"),
                          ("unmeasured", "not measured (no value on one side)"),
                          ("new", "new (not in the baseline; not gated)"),
                          ("gone", "gone (in the baseline, not in this run)")):
        rows = comparison.having(status)
        if rows:
            shown = ", ".join(r.nodeid for r in rows[:5]) + (f", ... {len(rows) - 5} more" if len(rows) > 5 else "")
            lines.append(f"{len(rows)} {label}: {shown}")
    better = improvements(comparison)
    if better:
        lines.append(better)
    ok, improved = len(comparison.having("ok")), len(comparison.having("improved"))
    lines.append(f"{ok} within tolerance, {improved} improved beyond it")
    return lines
