"""`MapDiff`: what appeared, vanished or grew between two snapshots of one process, and its rendering.

The kernel merges a fresh anonymous mmap into a neighbouring VMA with the same flags, and mprotect
splits one VMA into several, so mappings are not matched by start address. Instead every group of
mappings whose address ranges overlap across the two snapshots is one `MappingChange`, and "new"
means address space that is mapped now and was not mapped before: a 1 MiB mmap merged into an old
64 MiB VMA is 1 MiB new, however the VMA boundaries moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..errors import UsageError, warn
from ..size import Size, SizeLike, parse_size, signed
from .mapping import Mapping
from .render.difftext import render_diff
from .totals import Totals, sum_known

if TYPE_CHECKING:
    from ..size import SizeLike
    from .snapshot import Snapshot

__all__ = ["MapDiff", "MappingChange", "check_render", "other_process"]

Ignore = Callable[[Mapping], bool]


def _delta(before: Optional[int], after: Optional[int]) -> Optional[Size]:
    return None if before is None or after is None else Size.of(after - before)


def _ranges(mappings: Sequence[Mapping]) -> list[tuple[int, int]]:
    return [(m.start, m.end) for m in mappings]


def _covered(ranges: list[tuple[int, int]], others: list[tuple[int, int]]) -> int:
    """Bytes of `ranges` that `others` also cover (each list is disjoint within itself)."""
    total = 0
    for start, end in ranges:
        for o_start, o_end in others:
            lo, hi = max(start, o_start), min(end, o_end)
            if lo < hi:
                total += hi - lo
    return total


@dataclass(frozen=True)
class MappingChange:
    """One group of overlapping mappings that differs between the two snapshots.

    `kind` is `+` (appeared: nothing was mapped there before), `-` (vanished) or `~` (changed:
    grew, shrank, split, merged, changed permissions or resident memory).
    """

    kind: str
    """`+`, `-` or `~`."""
    before: tuple[Mapping, ...]
    """The mappings of the earlier snapshot in this group."""
    after: tuple[Mapping, ...]
    """The mappings of the later snapshot in this group."""
    start: int
    """Lowest address of the group."""
    new: Size
    """Address space mapped now that was not mapped before."""
    gone: Size
    """Address space mapped before that is not mapped now."""
    size_delta: Size
    """Change in mapped size (pmap's Kbytes)."""
    rss_delta: Optional[Size]
    """Change in resident memory; None when either snapshot has no per-mapping Rss."""
    dirty_delta: Optional[Size]
    """Change in dirty memory (Shared_Dirty + Private_Dirty), as pmap -x's Dirty column."""
    pid: int = 0
    """The process whose mappings these are (in a tree's diff, one of many)."""

    @property
    def mapping(self) -> Mapping:
        """The mapping that stands for the group: the first one now, or the first one before if it vanished."""
        return (self.after or self.before)[0]

    @property
    def is_anon(self) -> bool:
        """True when the group is anonymous memory."""
        return self.mapping.is_anon

    @property
    def path(self) -> str:
        """The kernel's name for the mapping (empty for plain anonymous memory)."""
        return self.mapping.path

    @property
    def growth(self) -> Size:
        """The most telling growth of the group: Rss change when known, else newly mapped space."""
        return self.rss_delta if self.rss_delta is not None else self.new

    def __repr__(self) -> str:
        rss = "" if self.rss_delta is None else f" rss {signed(self.rss_delta)}"
        return f"<{self.kind} {self.start:016x} new {self.new}{rss} {self.path or '[anon]'} (PID {self.pid})>"


def _groups(before: Sequence[Mapping], after: Sequence[Mapping]) -> list[tuple[list[Mapping], list[Mapping]]]:
    """Mappings of both sides grouped by overlapping address ranges (each side is disjoint in itself)."""
    tagged = sorted([(m.start, m.end, 0, m) for m in before] + [(m.start, m.end, 1, m) for m in after],
                    key=lambda t: (t[0], t[1], t[2]))
    groups: list[tuple[list[Mapping], list[Mapping]]] = []
    end = -1
    for start, stop, side, m in tagged:
        if not groups or start >= end:
            groups.append(([], []))
            end = stop
        else:
            end = max(end, stop)
        groups[-1][side].append(m)
    return groups


def _same(a: Mapping, b: Mapping) -> bool:
    return a._parsed() == b._parsed() and a.rss == b.rss and a.dirty == b.dirty


def other_process(before: Snapshot, after: Snapshot) -> str:
    """Why `before` and `after` are not snapshots of one process ("" when they are): their PIDs, or
    their start times (a PID reused), differ."""
    if before.pid == after.pid and before.start_time == after.start_time:
        return ""
    return (f"the two snapshots are of different processes (PID {before.pid} started at tick {before.start_time}, "
            f"PID {after.pid} at tick {after.start_time})")


class MapDiff:
    """The difference between two snapshots of one process: `before` and `after`.

    Two snapshots of different processes are compared all the same, with a `PmapWarning` that says so.
    """

    def __init__(self, before: Snapshot, after: Snapshot, ignore: Optional[Ignore] = None) -> None:
        why = other_process(before, after)
        if why:
            warn(f"{why}: the diff compares two unrelated memory maps")
        self.before = before
        self.after = after
        self.ignore = ignore
        """The rule that left mappings out (`pytest_pmap_ignore_mapping`), or None."""
        self.changes: list[MappingChange] = []
        """Every group of mappings that differs, in address order."""
        kept_before = [m for m in before.mappings if not (ignore and ignore(m))]
        kept_after = [m for m in after.mappings if not (ignore and ignore(m))]
        for old, new in _groups(kept_before, kept_after):
            if len(old) == 1 and len(new) == 1 and _same(old[0], new[0]):
                continue
            old_ranges, new_ranges = _ranges(old), _ranges(new)
            old_size = sum(e - s for s, e in old_ranges)
            new_size = sum(e - s for s, e in new_ranges)
            overlap = _covered(new_ranges, old_ranges)
            self.changes.append(MappingChange(
                kind="+" if not old else "-" if not new else "~",
                before=tuple(old),
                after=tuple(new),
                start=min(m.start for m in (new or old)),
                new=Size.of(new_size - overlap),
                gone=Size.of(old_size - overlap),
                size_delta=Size.of(new_size - old_size),
                rss_delta=_delta(sum_known(m.rss for m in old), sum_known(m.rss for m in new)),
                dirty_delta=_delta(sum_known(m.dirty for m in old), sum_known(m.dirty for m in new)),
                pid=after.pid,
            ))

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, ignore: Optional[Ignore] = None) -> MapDiff:
        """The diff from `before` to `after`, leaving out mappings for which `ignore(mapping)` is true.

        Two snapshots of process trees give their `TreeDiff` (a process's mappings are matched
        only with the same process's); a tree and a single process cannot be compared.
        """
        if before.is_tree or after.is_tree:
            if before.is_tree != after.is_tree:
                raise UsageError(
                    f"cannot diff a snapshot of the process tree of PID {(before if before.is_tree else after).pid} "
                    f"with one of the single process {(after if before.is_tree else before).pid}: take both with the tree "
                    "(snapshot_tree(), or `pytest-pmap snapshot --tree` and `pytest-pmap diff --tree`)"
                )
            return after.diff(before, ignore)
        return cls(before, after, ignore)

    @property
    def added(self) -> list[Mapping]:
        """Mappings over address space that was not mapped at all before."""
        return [m for c in self.changes if c.kind == "+" for m in c.after]

    @property
    def removed(self) -> list[Mapping]:
        """Mappings whose address space is not mapped at all now."""
        return [m for c in self.changes if c.kind == "-" for m in c.before]

    @property
    def changed(self) -> list[tuple[Mapping, Mapping]]:
        """(before, after) pairs of overlapping mappings that differ: grown, shrunk, split, merged or re-protected."""
        return [
            (b, a) for c in self.changes if c.kind == "~"
            for a in c.after for b in c.before if b.start < a.end and a.start < b.end
        ]

    @property
    def growth(self) -> Totals:
        """Every metric after minus before (signed)."""
        return self.after.totals - self.before.totals

    def new_mappings(self, anon: Optional[bool] = None, larger_than: SizeLike = 0) -> list[MappingChange]:
        """Groups with more than `larger_than` bytes of newly mapped address space.

        `anon=True` keeps anonymous memory only, `anon=False` file mappings only. A new region that
        the kernel merged into an old VMA counts with its new bytes only.
        """
        limit = parse_size(larger_than)
        return [
            c for c in self.changes
            if c.new > limit and c.new > 0 and (anon is None or c.is_anon == anon)
        ]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[MappingChange]:
        return iter(self.changes)

    def render(self, fmt: str = "x", *, limit: Optional[int] = None, show_path: bool = False, metric: str = "rss") -> str:
        """The pmap-formatted diff: changed rows in pmap -x (or -d) columns with +/-/~ and signed
        deltas, then pmap -d's summary line before -> after.

        `limit` keeps the rows that moved the most (by resident, then mapped change), in address
        order. `metric` is the one a tree's diff ranks its processes by; one process's rows always
        rank by resident change.
        """
        check_render(fmt, limit)
        return render_diff(self, fmt, limit, show_path)

    def brief(self, rows: int = 3, metric: str = "rss") -> str:
        """`render()` in a few lines, short enough for pytest's assertion message: the column titles,
        the `rows` mappings that moved most, and pmap -d's summary line before -> after."""
        lines = self.render(limit=rows, metric=metric).splitlines()[1:-1]  # past the PID line; the last is RSS/PSS/USS
        return "".join(f"{line}\n" for line in lines if not line.startswith(("  ---", "  total kB")))

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return (
            f"<MapDiff pid={self.after.pid} +{len(self.added)} -{len(self.removed)} ~{len(self.changed)} "
            f"mapped {signed(self.growth.mapped)}>"
        )


def check_render(fmt: str, limit: Optional[int]) -> None:
    """Refuse what a diff's `render()` cannot show: a format other than `x` or `d`, a `limit` that
    is not a whole number of 1 or more."""
    if fmt not in ("x", "d"):
        raise UsageError(f"{fmt!r} is not a diff format: give 'x' (pmap -x columns) or 'd' (pmap -d columns)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(f"limit={limit!r}: give a whole number of 1 or more, or None for every row")
