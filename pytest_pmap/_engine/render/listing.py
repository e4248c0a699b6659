"""Snapshot -> text, exactly as procps-ng pmap 4.0.2 prints it (see pmap-format.md in the design
notes): the default, -x and -d listings, rendered a span of blocks at a time from the parser's
columns. -X and -XX are in `table`.

Pure functions: no /proc here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import add, and_, is_, is_not, rshift, sub

from ...errors import PmapError
from ..parse.run import HeaderColumns, Run
from ..permissions import add_sizes_by_perms, mode_totals_of
from .names import Names
from .text import MODES, header_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, TypeVar

    _T = TypeVar("_T")

    from ..mapping import Span
    from ..snapshot import Snapshot
    from .table import Shown
    from .text import Head

__all__ = ["FORMATS", "FULL_RANGE", "render", "render_runs"]

FORMATS = ("default", "x", "d", "X", "XX")
FULL_RANGE = (0, (1 << 64) - 1)


class _Rows:
    """The blocks of one span that pmap reads, and which of them it shows.

    pmap reads every mapping until the first that starts past the range (so it reads blocks
    `first` to `stop` - 1 of the span; `last` says it stopped in this span) and shows those
    that end inside or after the range.
    """

    __slots__ = ("first", "last", "shown", "stop")

    def __init__(self, first: int, stop: int, shown: Optional[list[bool]], last: bool) -> None:
        self.first = first
        self.stop = stop
        self.shown = shown
        """For each block read, whether it is shown; None when every one is."""
        self.last = last

    @classmethod
    def of(cls, columns: HeaderColumns, first: int, stop: int, rng: tuple[int, int]) -> _Rows:
        """The rows of blocks first..stop-1 of a run, for the range `rng` (both ends inclusive)."""
        low, high = rng
        read = stop
        if high != FULL_RANGE[1]:  # pmap skips a mapping that ends below the range before it looks for its end
            starts, ends = columns.starts, columns.ends
            read = next((i for i in range(first, stop) if starts[i] > high and ends[i] - 1 >= low), stop)
        shown = [end - 1 >= low for end in columns.ends[first:read]] if low else None
        return cls(first, read, shown, read < stop)

    def only(self, keep: Iterable[bool]) -> _Rows:
        """These rows, showing only those of the shown ones that `keep` says (one flag per block read)."""
        shown = list(keep) if self.shown is None else list(map(and_, self.shown, keep))
        return _Rows(self.first, self.stop, shown, self.last)

    def pick(self, values: list[_T]) -> list[_T]:
        """The shown ones of values for the blocks read."""
        return values if self.shown is None else list(compress(values, self.shown))

    def take(self, column: list[_T]) -> list[_T]:
        """The shown ones of a column of the whole run."""
        return self.pick(column[self.first : self.stop])

    def names(self, names: Names, columns: HeaderColumns) -> list[str]:
        """The Mapping column of the shown blocks."""
        return self.pick(names.column(columns, self.first, self.stop))

    def sizes(self, columns: HeaderColumns) -> list[int]:
        """The shown blocks' sizes in bytes."""
        return list(map(sub, self.take(columns.ends), self.take(columns.starts)))

    def modes(self, columns: HeaderColumns) -> Iterator[str]:
        """The shown blocks' pmap modes (`rw---`)."""
        return map(MODES.__getitem__, self.take(columns.perms))


def _row_spans(spans: Iterable[Span], rng: tuple[int, int]) -> Iterator[tuple[Run, HeaderColumns, _Rows]]:
    """Each span's run, header columns and rows, up to the first block past the range."""
    for run, first, stop in spans:
        columns = run.header_columns()
        rows = _Rows.of(columns, first, stop, rng)
        yield run, columns, rows
        if rows.last:
            return


def render(
    snap: Snapshot,
    fmt: str = "default",
    *,
    quiet: bool = False,
    show_path: bool = False,
    range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
    utf8: Optional[bool] = None,
) -> str:
    """What `pmap [-x|-d|-X|-XX] [-q] [-p] [-A L,H] PID` prints for `snap`, header line included."""
    if fmt in ("x", "X", "XX") and not snap.detail and snap.mappings:
        raise PmapError(
            f"PID {snap.pid}: this snapshot was taken with detail=False (maps only); "
            f"pmap -{fmt} needs smaps: take it with detail=True"
        )
    from ..mapping import spans

    return _render(snap, spans(snap.mappings), fmt, quiet, show_path, range or FULL_RANGE, utf8)


def render_runs(
    snap: Head,
    runs: Iterable[Run],
    fmt: str = "default",
    *,
    quiet: bool = False,
    show_path: bool = False,
    range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
    utf8: Optional[bool] = None,
    columns: Optional[Shown] = None,
) -> str:
    """`render` for the mappings of the parser's runs, each rendered as it comes: the command
    renders a run while the next is read. `snap` gives the header line and what names depend
    on (PID, command line, stack): a `Snapshot`, or anything with those attributes. `columns` are the columns of an
    rc file (pmap -c), for the "X" format."""
    whole = ((run, 0, len(run)) for run in runs)
    return _render(snap, whole, fmt, quiet, show_path, range or FULL_RANGE, utf8, columns)


def _render(snap: Head, spans: Iterable[Span], fmt: str, quiet: bool, show_path: bool,
            rng: tuple[int, int], utf8: Optional[bool], columns: Optional[Shown] = None) -> str:
    if fmt not in FORMATS:
        raise PmapError(f"unknown pmap format {fmt!r}: use one of {', '.join(FORMATS)}")
    lines = [header_line(snap, utf8)]
    names = Names(snap.start_stack, snap.shm_minor, show_path)
    if fmt == "default":
        _default(spans, names, rng, quiet, lines)
    elif fmt == "d":
        _device(spans, names, rng, quiet, lines)
    elif fmt == "x":
        _extended(spans, names, rng, quiet, lines)
    else:
        from .table import SHOWN_X, SHOWN_XX, smaps_table

        smaps_table(snap.pid, spans, columns or (SHOWN_XX if fmt == "XX" else SHOWN_X), quiet, show_path, lines)
    return "\n".join(lines) + "\n"


def _default(spans: Iterable[Span], names: Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    total = 0
    for _, columns, rows in _row_spans(spans, rng):
        sizes = rows.sizes(columns)
        total += sum(sizes)
        lines += map(" ".join, zip(
            _addresses(rows.take(columns.start_texts)), _formatted("%6dK", _kib(sizes)), rows.modes(columns),
            rows.names(names, columns),
        ))
    if not quiet:
        lines.append(f" total {total >> 10:16d}K")


def _device(spans: Iterable[Span], names: Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'Mode':<5} {'Offset':<16} {'Device':<9} Mapping")
    by_perms: dict[str, int] = {}
    for _, columns, rows in _row_spans(spans, rng):
        starts, ends, perms = rows.take(columns.starts), rows.take(columns.ends), rows.take(columns.perms)
        offsets, majors, minors, _ = map(rows.take, columns.ids())
        add_sizes_by_perms(by_perms, perms, starts, ends)
        lines += map(
            "%016x %7d %s %016x %03x:%05x %s".__mod__,
            zip(starts, _kib(rows.sizes(columns)), rows.modes(columns), offsets, majors, minors, rows.names(names, columns)),
        )
    if not quiet:
        mapped, writeable, shared = mode_totals_of(by_perms)
        lines.append(f"mapped: {mapped >> 10}K    writeable/private: {writeable >> 10}K    shared: {shared >> 10}K")


#: The fields pmap -x reads: RSS, and Dirty as the sum of the middle two. A mapping without a
#: `Swap:` line is read (it counts in the totals) but not printed.
_EXTENDED_KEYS = (b"\nRss:", b"\nShared_Dirty:", b"\nPrivate_Dirty:", b"\nSwap:")


def _extended(spans: Iterable[Span], names: Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'RSS':>7} {'Dirty':>7} {'Mode':<5} Mapping")
    total = total_rss = total_dirty = 0
    for run, columns, rows in _row_spans(spans, rng):
        rss, shared_dirty, private_dirty, swap = (run.numbers(key)[rows.first : rows.stop] for key in _EXTENDED_KEYS)
        rss_kib, dirty_kib = _kib(rss), list(map(add, _kib(shared_dirty), _kib(private_dirty)))
        total_rss += sum(rss_kib)  # every mapping read counts, shown or not
        total_dirty += sum(dirty_kib)
        sizes = rows.sizes(columns)
        total += sum(sizes)  # every mapping in the range counts, printed or not
        if _has_none(swap):  # pmap prints a row when it meets its Swap line
            rows = rows.only(map(is_not, swap, repeat(None)))
            sizes = rows.sizes(columns)
        lines += map(" ".join, zip(
            _addresses(rows.take(columns.start_texts)), _formatted("%7d", _kib(sizes)), _formatted("%7d", rows.pick(rss_kib)),
            _formatted("%7d", rows.pick(dirty_kib)), rows.modes(columns), rows.names(names, columns),
        ))
    if not quiet:
        lines.append("---------------- ------- ------- ------- ")
        lines.append(f"{'total kB':<16} {total >> 10:7d} {total_rss:7d} {total_dirty:7d}")


def _kib(sizes: Sequence[Optional[int]]) -> list[int]:
    """Sizes in bytes as whole KiB, as pmap prints them; a missing one counts as 0."""
    if _has_none(sizes):
        return [(size or 0) >> 10 for size in sizes]
    return list(map(rshift, sizes, repeat(10)))


def _formatted(fmt: str, values: list[int]) -> Iterator[str]:
    """Each value `fmt % value`; a column's values repeat, so each distinct one is formatted once."""
    text = {value: fmt % value for value in set(values)}
    return map(text.__getitem__, values)


def _addresses(texts: list[str]) -> Iterator[str]:
    """pmap's `%016lx` of each start address, from the kernel's hex text (the same number)."""
    if max(map(len, texts), default=0) > 16:  # leading zeros a kernel does not write
        return map("%016x".__mod__, map(int, texts, repeat(16)))
    return map(str.zfill, texts, repeat(16))


def _has_none(values: Iterable[object]) -> bool:
    """`None in values`, without asking each value whether it equals None (`Size` would parse it)."""
    return any(map(is_, values, repeat(None)))
