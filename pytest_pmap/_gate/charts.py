"""The HTML report's charts, as inline SVG drawn here (no script, no library, no network): a bar
chart of the tests that grew most, and line charts of a history."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Optional

from ..size import signed

__all__ = ["bar_chart", "line_chart"]

BAR_HEIGHT = 18
LABEL_WIDTH = 420
BAR_WIDTH = 360


CHAR_WIDTH = 6.6
"""The most a character of the charts' 11px type takes, on average over a node ID (pixels)."""


def _short(text: str, width: int) -> str:
    """`text` cut to `width` characters from the left (a node ID's end says most)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _middle(text: str, width: int) -> str:
    """`text` in `width` characters, shortened in the middle: its start (the file) and most of its
    end (the test's name and a parametrized test's `[id]`) are kept."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return text[: width - 1 - tail] + "…" + text[-tail:]


def bar_chart(items: Sequence[tuple[str, int]], title: str) -> str:
    """Horizontal bars, one per (label, bytes), longest first as given; each bar's label is the
    test, its value in pmap's unit, and a tooltip with the whole node ID."""
    if not items:
        return ""
    largest = max(abs(v) for _, v in items) or 1
    height = BAR_HEIGHT * len(items) + 8
    parts = [f'<svg class="chart bars" role="img" aria-label="{html.escape(title)}" width="{LABEL_WIDTH + BAR_WIDTH + 90}" '
             f'height="{height}" viewBox="0 0 {LABEL_WIDTH + BAR_WIDTH + 90} {height}">']
    for i, (label, value) in enumerate(items):
        y = 4 + i * BAR_HEIGHT
        width = max(1, round(abs(value) / largest * BAR_WIDTH))
        cls = "neg" if value < 0 else "pos"
        name = html.escape(label)
        parts.append(
            f'<g><title>{name}: {signed(value)}</title>'
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{html.escape(_short(label, 60))}</text>'
            f'<rect class="{cls}" x="{LABEL_WIDTH}" y="{y + 2}" width="{width}" height="{BAR_HEIGHT - 4}"/>'
            f'<text x="{LABEL_WIDTH + width + 6}" y="{y + 13}">{signed(value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, values: Sequence[Optional[int]], labels: Sequence[str], width: int = 360, height: int = 120) -> str:
    """One series over the runs of a history: a polyline with a point per measured run (a gap
    where the test was not measured), the least and greatest values on the axis, and each
    point's run and value as a tooltip."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(*known, 0), max(*known, 0)
    span = (high - low) or 1
    left, right, top, bottom = 64, 8, 22, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(1, len(values) - 1)

    def x(i: int) -> float:
        return left + (i * step if len(values) > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top + plot_h - (v - low) / span * plot_h

    segments: list[list[str]] = [[]]
    points = []
    for i, v in enumerate(values):
        if v is None:
            segments.append([])
            continue
        segments[-1].append(f"{x(i):.1f},{y(v):.1f}")
        run = html.escape(labels[i] if i < len(labels) else str(i + 1))
        points.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5"><title>{run}: {signed(v)}</title></circle>')
    lines = "".join(f'<polyline points="{" ".join(s)}"/>' for s in segments if len(s) > 1)
    zero = f'<line class="zero" x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>'
    name = html.escape(title)
    # The title from the left edge, shortened in the middle to what the chart's width holds; the
    # axis names the first and the last run (one run: one label, in the middle).
    title_text = _middle(title, int((width - 16) / CHAR_WIDTH))
    if len(values) == 1:
        axis = (f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                f'{html.escape(labels[0] if labels else "")}</text>')
    else:
        room = int(plot_w / 2 / CHAR_WIDTH) - 1
        axis = (f'<text x="{left}" y="{height - 4}">{html.escape(labels[0][:room] if labels else "")}</text>'
                f'<text x="{width - right}" y="{height - 4}" text-anchor="end">'
                f'{html.escape(labels[-1][:room] if labels else "")}</text>')
    return (
        f'<svg class="chart line" role="img" aria-label="{name}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{name}</title>'
        f'<text class="title" x="8" y="14">{html.escape(title_text)}</text>'
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{signed(high)}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{signed(low)}</text>'
        f'{zero}{lines}{"".join(points)}{axis}'
        "</svg>"
    )
