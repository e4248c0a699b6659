"""The HTML report (`--pmap-html`, `pytest-pmap report`): one self-contained page, with its style,
script, data and SVG charts inline and a policy that forbids loading anything, so that it opens
from a CI artifact, an e-mail or a file share alike.

The page holds a summary, a sortable and filterable table of every test (built by the script from
the page's data: see `htmlassets`), a bar chart of the tests that grew most, line charts of the
history where one is given, and each failing test's pmap-formatted text.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any, Optional

from .._engine.metrics import DEFAULT_METRIC
from .._measure.result import MemoryResult
from ..size import signed
from .charts import bar_chart, line_chart
from .compare import Comparison, Row
from .gatetext import accept_entry, improvements, next_steps
from .history import HistoryEntry
from .htmlassets import SCRIPT, STYLE
from .results import RunResults
from .trend import series

__all__ = ["COLUMNS", "render_html"]

COLUMNS = ("test", "status", "{metric}", "RSS", "USS", "peak", "new mappings", "tolerance used", "change vs baseline", "note")
"""The table's columns; sizes are growth during each test's call."""
TOP_BARS = 20
LINE_CHARTS = 12
MAX_DETAILS = 200
"""Failing tests whose pmap text the page holds; the rest are counted."""
MAX_TEXT = 20_000
"""Characters of one failing test's text."""
POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
"""The page may load nothing: everything it shows is in it."""


def _row(result: Optional[MemoryResult], metric: str, row: Optional[Row]) -> list[Any]:
    """A test's cells, in `COLUMNS` order (sizes in bytes, None where unknown)."""
    nodeid = row.nodeid if row is not None else result.nodeid if result is not None else ""
    status = row.status if row is not None else ""
    note = row.reason if row is not None else ""
    if result is not None and result.budget:
        status = status if status in ("regressed", "accepted") else "budget"
        # A budget is checked over the call alone; the row's figures are the whole test's.
        note = "; ".join(filter(None, [note, *(f"budget, in the call: {b}" for b in result.budget)]))
    if row is not None and row.widened:
        note = "; ".join(filter(None, [note, f"allowance widened: {row.widened}"]))
    if row is not None and row.evidence:  # the re-measurements that confirmed a suspect, or did not
        note = "; ".join(filter(None, [note, row.evidence]))
    if row is not None and row.metric:
        note = "; ".join(filter(None, [note, f"found in {row.metric}"]))
    used = row.used if row is not None else None
    return [
        nodeid, status,
        result.value(metric) if result is not None else None,
        result.growth.get("rss") if result is not None else None,
        result.growth.get("uss") if result is not None else None,
        result.peak_growth if result is not None else None,
        result.new_mappings if result is not None else None,
        None if used is None else round(used, 1),
        row.delta if row is not None else None,
        note,
    ]


def _script_json(data: object) -> str:
    """JSON that cannot end the `<script>` element holding it."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _failure_text(result: MemoryResult, row: Optional[Row]) -> str:
    parts = []
    if row is not None and row.status in ("regressed", "accepted") and result.new_regions:
        parts.append(f"{row.status}: {signed(row.base)} -> {signed(row.head)} ({signed(row.delta)}, allowed {row.allowance})")
        parts.append(f"{'Address':<16} {'Kbytes':>8} Mode  Mapping")
        parts += [r.row() for r in result.new_regions]
    if row is not None and row.status == "regressed":
        parts.append(f"to accept it, under [tool.pytest_pmap] accept: {accept_entry(row.nodeid)}")
    if result.failure:
        parts.append(result.failure)
    text = "\n".join(parts)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n... {len(text) - MAX_TEXT:,} more characters"


def _summary(run: RunResults, comparison: Optional[Comparison], tests: int, statuses: dict[str, int]) -> list[str]:
    out = []
    if comparison is not None:
        verdict = "pass" if comparison.passed else "fail"
        out.append(f'<p class="verdict {verdict}">{html.escape(comparison.headline())}</p>')
        out += [f'<p class="warning">{html.escape(w)}</p>' for w in comparison.warnings]
        better = improvements(comparison)
        if better:
            out.append(f"<p>{html.escape(better)}</p>")
    elif run.notes:
        out += [f'<p class="warning">{html.escape(n)}</p>' for n in run.notes]
    if run.complete is False:
        out.append(f'<p class="warning">This run did not finish: {html.escape(run.outcome())}</p>')
    cards = [("tests", tests)] + [(label, statuses[key]) for key, label in (
        ("regressed", "regressed"), ("noise", "noise"), ("accepted", "accepted"), ("improved", "improved"),
        ("new", "new"), ("gone", "gone"), ("budget", "over budget")) if statuses.get(key)]
    out.append('<div class="cards">' + "".join(f'<div class="card"><b>{n:,}</b>{html.escape(label)}</div>'
                                               for label, n in cards) + "</div>")
    env = run.environment
    facts = [f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(run.created_at))}" if run.created_at else "",
             env.python, f"kernel {env.kernel}" if env.kernel else "", env.machine,
             f"THP {env.thp}" if env.thp else "", f"pytest-pmap {env.pytest_pmap}" if env.pytest_pmap else "",
             f"merged from {len(run.inputs)} files" if run.inputs else "",
             "several samples per test" if run.samples else ""]
    out.append(f'<p class="muted">{html.escape(" · ".join(f for f in facts if f))}</p>')
    return out


def _history_charts(history: Sequence[HistoryEntry], metric: str) -> list[str]:
    labels = [e.label for e in history]
    columns = [e.column(metric) for e in history]
    totals = [sum(v for v in c.values() if v is not None) if c else None for c in columns]
    charts = [line_chart(f"all tests: {metric} summed", totals, labels)]
    moved = [s for s in series(history, metric, columns=columns)[:LINE_CHARTS] if s.spread]
    charts += [line_chart(s.nodeid, s.values, labels) for s in moved]
    runs = f"{len(history)} run{'s' if len(history) != 1 else ''}"
    if len(history) == 1:
        said = f"{html.escape(metric)} of the suite in its one run so far; a test's line shows once it has two"
    elif moved:
        said = f"{html.escape(metric)} run by run, the suite and the {len(moved)} tests that moved most"
    else:
        said = f"{html.escape(metric)} run by run, the suite; no test moved over these {runs}"
    return [f"<h2>History ({runs})</h2>", f'<p class="muted">{said}</p>',
            '<div class="lines">' + "".join(c for c in charts if c) + "</div>"]


def render_html(run: RunResults, comparison: Optional[Comparison] = None, history: Optional[Sequence[HistoryEntry]] = None,
                *, metric: str = DEFAULT_METRIC, title: str = "pytest-pmap: memory per test") -> bytes:
    """The page, as UTF-8 bytes."""
    metric = comparison.metric if comparison is not None else metric
    results = list(run.by_test().values())  # of several samples, the most each figure grew (as the gate reads them)
    by_row = {r.nodeid: r for r in comparison.rows} if comparison is not None else {}
    rows = [_row(r, metric, by_row.get(r.nodeid)) for r in results]
    rows += [_row(None, metric, r) for r in by_row.values() if r.status == "gone"]
    statuses: dict[str, int] = {}
    for cells in rows:
        statuses[cells[1]] = statuses.get(cells[1], 0) + 1
    sort = 8 if comparison is not None else 2
    columns = [c.format(metric=metric) for c in COLUMNS]
    ranked = sorted((r for r in results if (r.value(metric) or 0) > 0), key=lambda r: r.value(metric) or 0, reverse=True)
    failing = [r for r in results
               if r.budget or (r.nodeid in by_row and by_row[r.nodeid].status in ("regressed", "accepted"))]
    options = "".join(f'<option value="{html.escape(s)}">{html.escape(s or "(none)")} ({n:,})</option>'
                      for s, n in sorted(statuses.items()))
    page = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *_summary(run, comparison, len(results), statuses),
    ]
    if ranked:
        page += [f"<h2>The tests that grew most ({html.escape(metric)}, top {min(TOP_BARS, len(ranked))})</h2>",
                 bar_chart([(r.nodeid, r.value(metric) or 0) for r in ranked[:TOP_BARS]], f"top growers by {metric}")]
    if history:
        page += _history_charts(history, metric)
    page += [
        "<h2>Tests</h2>",
        '<p class="muted">Growth from each test\'s setup to its teardown (a budget, in the note, is checked over the '
        "test's call alone); peak: how far RSS rose above its start; tolerance used: the change as a share of what "
        "the gate allowed (over 100% fails)."
        + (" Each test was measured several times: its row shows, of each figure, the largest of its samples "
           "(as the gate reads them)." if run.samples else "")
        + " Click a column to sort; sorting and the filter take in every test.</p>",
        '<div class="controls"><input id="filter" type="search" placeholder="filter by node ID" aria-label="filter by node ID">'
        f'<select id="status" aria-label="status"><option value="">every status</option>{options}</select>'
        '<span id="shown" class="muted"></span></div>',
        '<table id="tests"><thead><tr>' + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead>",
        '<tbody id="tests-body"></tbody></table><button id="more" type="button" hidden>show 500 more</button>',
        '<noscript><p class="warning">The table needs JavaScript; the data is in this page as JSON.</p></noscript>',
    ]
    if comparison is not None and comparison.regressions:  # said once, under the table (each test's line is below)
        page.append(f'<p class="next">Next, for the {len(comparison.regressions)} regressed: '
                    f"{html.escape(next_steps(comparison))}.</p>")
    if failing:
        page.append(f"<h2>Failing tests ({len(failing):,})</h2>")
        for r in failing[:MAX_DETAILS]:
            text = _failure_text(r, by_row.get(r.nodeid))
            page.append(f"<details><summary>{html.escape(r.nodeid)}</summary><pre>{html.escape(text)}</pre></details>")
        if len(failing) > MAX_DETAILS:
            page.append(f'<p class="muted">... and {len(failing) - MAX_DETAILS:,} more failing tests</p>')
    page += [
        f'<script type="application/json" id="pmap-data">{_script_json({"rows": rows, "sort": sort})}</script>',
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(page).encode("utf-8")
