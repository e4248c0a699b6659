"""`pytest-pmap trend`: each test's series from a history file, as a sparkline in the terminal,
the tests that moved most first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .._measure.budget import matches_nodeid
from ..size import signed
from .history import HistoryEntry

__all__ = ["SPARKS", "Series", "series", "sparkline", "trend_lines"]

SPARKS = "▁▂▃▄▅▆▇█"
"""The eight heights of a sparkline, lowest first."""
SPARK_RUNS = 60
"""The most runs a sparkline shows (the last ones): a line of the terminal stays one line."""
GAP = "·"
"""A run in which the test was not measured (not run, or the metric unknown)."""


def sparkline(values: Sequence[Optional[int]]) -> str:
    """One character per value, its height between the series' least and greatest; `GAP` for None.
    A flat series is all lowest bars."""
    known = [v for v in values if v is not None]
    if not known:
        return GAP * len(values)
    low, high = min(known), max(known)
    span = high - low
    top = len(SPARKS) - 1
    return "".join(GAP if v is None else SPARKS[round((v - low) * top / span) if span else 0] for v in values)


@dataclass(frozen=True)
class Series:
    """One test's values of a metric over the runs of a history, oldest first."""

    nodeid: str
    values: tuple[Optional[int], ...]

    @property
    def known(self) -> list[int]:
        """The values that were measured."""
        return [v for v in self.values if v is not None]

    @property
    def change(self) -> int:
        """The last measured value minus the first."""
        known = self.known
        return known[-1] - known[0] if known else 0

    @property
    def spread(self) -> int:
        """The greatest value minus the least."""
        known = self.known
        return max(known) - min(known) if known else 0


def series(entries: Sequence[HistoryEntry], metric: str, pattern: str = "*",
           columns: Optional[Sequence[dict[str, Optional[int]]]] = None) -> list[Series]:
    """Every test matching `pattern`, its values of `metric` run by run, the largest movers first
    (by the change from first to last, then by the spread, then by name). `columns`: each entry's
    `column(metric)`, where the caller has them already."""
    names: dict[str, None] = {}
    for entry in entries:
        names.update(dict.fromkeys(entry.tests))
    if pattern != "*":
        names = {n: None for n in names if matches_nodeid(n, pattern)}
    if columns is None:
        columns = [e.column(metric) for e in entries]

    def key(values: tuple[Optional[int], ...]) -> tuple[int, int]:
        known = [v for v in values if v is not None]
        return (-abs(known[-1] - known[0]), min(known) - max(known)) if known else (0, 0)

    found = [(n, tuple(c.get(n) for c in columns)) for n in names]
    found.sort(key=lambda item: (*key(item[1]), item[0]))
    return [Series(n, values) for n, values in found]


def trend_lines(entries: Sequence[HistoryEntry], metric: str, pattern: str = "*", limit: int = 0) -> Optional[list[str]]:
    """The `pytest-pmap trend` listing: a heading, then one line per test (at most `limit`; 0: all);
    None when no test matches `pattern`."""
    found = series(entries, metric, pattern)
    if not found:
        return None
    first, last = entries[0], entries[-1]
    tests, runs = f"{len(found)} test{'s' if len(found) != 1 else ''}", f"{len(entries)} run{'s' if len(entries) != 1 else ''}"
    width = min(len(entries), SPARK_RUNS)
    column = "runs" if width == len(entries) else f"last {width} runs"
    pad = max(4, width, len(column))
    lines = [
        f"{metric} of {tests} over {runs} "
        f"({first.label} .. {last.label}), largest movers first; sizes in KiB, {GAP} = not measured",
        f"{'change':>9} {'first':>9} {'last':>9} {'least':>9} {'most':>9}  {column:<{pad}}  test",
    ]
    shown = found[:limit] if limit else found
    for s in shown:
        known = s.known
        numbers = [signed(v, unit=False, missing="-") for v in
                   (s.change if known else None, known[0] if known else None, known[-1] if known else None,
                    min(known) if known else None, max(known) if known else None)]
        spark = sparkline(s.values[-width:])
        lines.append(" ".join(f"{n:>9}" for n in numbers) + f"  {spark:<{pad}}  {s.nodeid}")
    if len(shown) < len(found):
        lines.append(f"... and {len(found) - len(shown)} more (--limit 0 lists all)")
    return lines
