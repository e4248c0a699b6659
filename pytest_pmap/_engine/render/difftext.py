"""A `MapDiff` as text: the changed mappings in pmap -x (or -d) columns with +/-/~ and signed
deltas, then pmap -d's summary line before -> after, and RSS, PSS and USS before -> after.

Pure functions: no /proc here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from ...size import Size, signed
from ..totals import sum_known
from .names import Names
from .text import header_line, mode

if TYPE_CHECKING:
    from ..diff import MapDiff
    from ..snapshot import Snapshot

__all__ = ["render_diff", "summary_line"]


def _column(value: Optional[int]) -> str:
    """A change in a diff's column: KiB without the unit, `-` when not known."""
    return signed(value, unit=False, missing="-")


def _when(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _arrow(name: str, before: Optional[Size], after: Optional[Size]) -> str:
    if before is None or after is None:
        return f"{name}: n/a"
    return f"{name}: {before.kib}K -> {after.kib}K ({signed(after - before)})"


def summary_line(before: Snapshot, after: Snapshot) -> str:
    """pmap -d's summary line, before -> after with the change."""
    b, a = before.totals, after.totals
    return "    ".join((
        _arrow("mapped", b.mapped, a.mapped),
        _arrow("writeable/private", b.writeable_private, a.writeable_private),
        _arrow("shared", b.shared, a.shared),
    ))


def render_diff(diff: MapDiff, fmt: str, limit: Optional[int], show_path: bool) -> str:
    """The text of `MapDiff.render`: `limit` keeps the rows that moved the most."""
    before, after = diff.before, diff.after
    changes = diff.changes
    hidden = 0
    if limit is not None and len(changes) > limit:
        ranked = sorted(changes, key=lambda c: (abs(c.rss_delta or 0), abs(c.new) + abs(c.gone)), reverse=True)
        keep = {id(c) for c in ranked[:limit]}
        hidden = len(changes) - limit
        changes = [c for c in changes if id(c) in keep]
    lines = [f"{header_line(after)}  (pmap diff {_when(before.taken_at)} -> {_when(after.taken_at)})"]
    if fmt == "d":
        lines.append(f"  {'Address':<16} {'Kbytes':>8} {'Mode':<5} {'Offset':<16} {'Device':<9} Mapping")
    else:
        lines.append(f"  {'Address':<16} {'Kbytes':>8} {'RSS':>8} {'Dirty':>8} {'Mode':<5} Mapping")
    names = {id(snap): Names(snap.start_stack, snap.shm_minor, show_path) for snap in (before, after)}
    for c in changes:
        m = c.mapping
        snap = after if c.after else before
        name = names[id(snap)].one(m._run, m._i)
        if c.kind == "~" and c.new and (len(c.before) != 1 or len(c.after) != 1 or c.new != c.size_delta):
            name += f"  ({c.new.kib}K new)"
        if fmt == "d":
            lines.append(
                f"{c.kind} {c.start:016x} {_column(c.size_delta):>8} {mode(m.perms)} "
                f"{m.offset:016x} {m.major:03x}:{m.minor:05x} {name}"
            )
        else:
            lines.append(
                f"{c.kind} {c.start:016x} {_column(c.size_delta):>8} {_column(c.rss_delta):>8} "
                f"{_column(c.dirty_delta):>8} {mode(m.perms):>5} {name}"
            )
    if not diff.changes:
        lines.append("  (no mapping appeared, vanished or changed)")
    if hidden:
        lines.append(f"  ... and {hidden} smaller change{'s' if hidden != 1 else ''} not shown")
    growth = diff.growth
    if fmt != "d":
        lines.append(f"  {'-' * 16} {'-' * 8} {'-' * 8} {'-' * 8}")
        lines.append(
            f"  {'total kB':<16} {_column(growth.mapped):>8} {_column(growth.rss):>8} "
            f"{_column(_dirty_total(before, after)):>8}"
        )
    lines.append(summary_line(before, after))
    b, a = before.totals, after.totals
    lines.append("    ".join(_arrow(n, getattr(b, n), getattr(a, n)) for n in ("rss", "pss", "uss")))
    return "\n".join(lines) + "\n"


def _dirty_total(before: Snapshot, after: Snapshot) -> Optional[int]:
    b, a = sum_known(m.dirty for m in before.mappings), sum_known(m.dirty for m in after.mappings)
    return None if a is None or b is None else a - b
