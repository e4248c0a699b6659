"""The metrics' values: `Totals`, and the sums behind them (their names and meanings are the one
table in `metrics`, re-exported here).

Each metric means one thing everywhere: `mapped`, `writeable_private` and `shared` are pmap -d's
summary line (address space, by permissions); the others are sums of smaps fields over every
mapping (or the same fields of smaps_rollup), never the status file's counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from ..size import Size
from .mapping import Mapping, spans
from .metrics import GROWTH, METRIC_DESCRIPTIONS, METRIC_FIELDS, METRICS, PEAK_DESCRIPTIONS, SUMMED
from .permissions import add_sizes_by_perms, mode_totals_of

__all__ = [
    "GROWTH", "METRICS", "METRIC_DESCRIPTIONS", "METRIC_FIELDS", "PEAK_DESCRIPTIONS", "SUMMED", "Totals",
    "add_sizes_by_perms", "mode_totals", "mode_totals_of", "sum_fields", "sum_known",
]


@dataclass(frozen=True)
class Totals:
    """Memory totals of one process, or the signed change between two readings of it.

    Every field is a `Size` in bytes, or None when the kernel did not report it (see `missing`);
    `METRIC_DESCRIPTIONS` says what each measures.
    """

    mapped: Optional[Size] = None
    writeable_private: Optional[Size] = None
    shared: Optional[Size] = None
    rss: Optional[Size] = None
    pss: Optional[Size] = None
    uss: Optional[Size] = None
    private_dirty: Optional[Size] = None
    anonymous: Optional[Size] = None
    swap: Optional[Size] = None

    @property
    def missing(self) -> tuple[str, ...]:
        """The metrics the kernel did not report."""
        return tuple(name for name in METRICS if getattr(self, name) is None)

    def as_dict(self) -> dict[str, Optional[int]]:
        """The totals as plain ints (bytes), None where missing."""
        return {name: (None if v is None else int(v)) for name in METRICS for v in [getattr(self, name)]}

    def __sub__(self, other: Totals) -> Totals:
        if not isinstance(other, Totals):
            return NotImplemented
        values: dict[str, Optional[Size]] = {}
        for name in METRICS:
            a, b = getattr(self, name), getattr(other, name)
            values[name] = None if a is None or b is None else Size.of(a - b)
        return Totals(**values)


def mode_totals(mappings: Iterable[Mapping]) -> tuple[int, int, int]:
    """pmap -d's (mapped, writeable/private, shared), in bytes: shared mappings count as shared,
    private writeable ones as writeable/private, and every mapping towards mapped."""
    by_perms: dict[str, int] = {}
    for run, first, stop in spans(mappings):
        columns = run.header_columns()
        add_sizes_by_perms(by_perms, columns.perms[first:stop], columns.starts[first:stop], columns.ends[first:stop])
    return mode_totals_of(by_perms)


def sum_known(values: Iterable[Optional[int]]) -> Optional[int]:
    """The sum, or None when any value is unknown (a maps-only snapshot, a kernel without Rss)."""
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def sum_fields(mappings: list[Mapping]) -> dict[str, int]:
    """Sum the smaps fields the metrics need over all mappings, a run at a time (each distinct
    text of a run's blocks once, see `parse.sections`); a field no mapping has is left out."""
    runs = list(spans(mappings))
    sums: dict[str, int] = {}
    for name in SUMMED:
        key = b"\n" + name.encode() + b":"
        found = [total for run, first, stop in runs if (total := run.total(key, first, stop)) is not None]
        if found:
            sums[name] = sum(found)
    return sums
