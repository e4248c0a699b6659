"""A process tree as text: the per-process table (PID, PPID, RSS, PSS, USS, command) with the tree's
totals and `unique`, and a `TreeDiff`: the same table with each process's growth, then the
pmap-formatted diff of each process that moved.

Pure functions: no /proc here. Commands are shown as pmap's header line shows them (escaped),
indented by their depth in the tree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from ...size import Size, signed
from .text import header_line

if TYPE_CHECKING:
    from ..snapshot import Snapshot
    from ..tree import TreeSnapshot
    from ..treediff import TreeDiff

__all__ = ["tree_brief", "tree_diff", "tree_table"]

_TITLES = f"{'PID':>8} {'PPID':>8} {'RSS':>10} {'PSS':>10} {'USS':>10}"


def _kib(value: Optional[int]) -> str:
    return "-" if value is None else f"{Size.of(value).kib}K"


def command(snap: Snapshot, utf8: Optional[bool] = None) -> str:
    """The process's command as pmap's header line shows it (`python server.py`, `[kthreadd]`)."""
    return header_line(snap, utf8).split(":   ", 1)[1]


def _depths(snaps: list[Snapshot]) -> dict[int, int]:
    """Each process's depth under the first one (the root), from their parents."""
    depth: dict[int, int] = {}
    for snap in snaps:  # tree order: a parent comes before its children
        depth[snap.pid] = depth.get(snap.ppid or -1, -1) + 1 if depth else 0
    return depth


def _row(mark: str, snap: Snapshot, depth: int, utf8: Optional[bool], extra: str = "") -> str:
    t = snap.totals
    ppid = "-" if snap.ppid is None else str(snap.ppid)
    return (f"{mark}{snap.pid:>7} {ppid:>8} {_kib(t.rss):>10} {_kib(t.pss):>10} {_kib(t.uss):>10}{extra}  "
            f"{'  ' * depth}{command(snap, utf8)}")


def _totals(tree: TreeSnapshot, extra: str = "") -> list[str]:
    t = tree.totals
    n = len(tree.processes)
    return [
        f"{'-' * 17} {'-' * 10} {'-' * 10} {'-' * 10}",
        f"{f'{n} process' + ('es' if n != 1 else ''):<17} {_kib(t.rss):>10} {_kib(t.pss):>10} {_kib(t.uss):>10}{extra}",
    ]


def _unique(tree: TreeSnapshot) -> str:
    if tree.unique is None:
        return f"unique: n/a ({tree.unique_note})"
    note = f"; {tree.unique_note}" if tree.unique_note else ""
    return f"unique: {tree.unique.kib}K (resident pages of the tree no other process maps, each counted once{note})"


def _summary(tree: TreeSnapshot) -> str:
    t = tree.totals
    return (f"mapped: {_kib(t.mapped)}    writeable/private: {_kib(t.writeable_private)}    "
            f"shared: {_kib(t.shared)}")


def tree_table(tree: TreeSnapshot, utf8: Optional[bool] = None) -> str:
    """The text of `TreeSnapshot.table()`."""
    snaps = list(tree.processes.values())
    depth = _depths(snaps)
    lines = [f"{header_line(tree.root, utf8)}   (process tree: {len(snaps)} process{'es' if len(snaps) != 1 else ''})",
             f"{_TITLES}  Command"]
    lines += [_row(" ", snap, depth[snap.pid], utf8) for snap in snaps]
    lines += _totals(tree)
    lines += [f"left out: {why}" for why in tree.exited.values()]  # each reason names its PID
    lines += [_unique(tree), _summary(tree)]
    return "\n".join(lines) + "\n"


def _when(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _table(diff: TreeDiff, limit: Optional[int], metric: str, utf8: Optional[bool]) -> list[str]:
    """The per-process table of a diff: `limit` keeps the processes that moved most."""
    shown = diff.by_process
    if limit is not None:
        top = {id(p) for p in diff.ranked(metric)[:limit]}
        shown = [p for p in shown if id(p) in top]
    depth = _depths([*diff.after.processes.values(), *diff.exited.values()])
    title = "PEAK" if metric == "peak_rss" else metric.upper()
    lines = [f"{_TITLES} {title + ' growth':>11}  Command"]
    for p in shown:
        growth = f" {signed(p.growth(metric), missing='-'):>11}"
        what = {"+": "   (appeared)", "-": "   (exited)"}.get(p.kind, "")
        lines.append(_row(p.kind, p.snapshot, depth.get(p.pid, 0), utf8, growth) + what)
    hidden = len(diff.by_process) - len(shown)
    if hidden:
        lines.append(f"  ... and {hidden} other process{'es' if hidden != 1 else ''} not shown")
    return lines


def _grew_most(diff: TreeDiff, metric: str, utf8: Optional[bool]) -> str:
    ranked = diff.ranked(metric)
    if not ranked:
        return "no process moved"
    top = ranked[0]
    snap = top.snapshot
    parent = "" if snap.ppid is None else f", child of {snap.ppid}"
    how = {"+": ", appeared", "-": ", exited"}.get(top.kind, "")
    if metric == "peak_rss":  # its peak since the baseline, which the tree's peak_rss sums, and how far it rose
        grew = f"peak_rss {_kib(top.peak)}, {signed(top.growth(metric), missing='-')} since the baseline"
    else:
        grew = f"{metric} {signed(top.growth(metric))}"
    return f"grew most: PID {snap.pid} ({command(snap, utf8)}){parent}{how}: {grew}"


def _change(before: Optional[int], after: Optional[int], name: str) -> str:
    if before is None or after is None:
        return f"{name}: n/a"
    return f"{name}: {_kib(before)} -> {_kib(after)} ({signed(after - before)})"


def tree_diff(diff: TreeDiff, fmt: str, limit: Optional[int], show_path: bool, metric: str,
              utf8: Optional[bool] = None) -> str:
    """The text of `TreeDiff.render`."""
    before, after = diff.before, diff.after
    lines = [f"{header_line(after.root, utf8)}   (pmap tree diff {_when(before.taken_at)} -> {_when(after.taken_at)})",
             _grew_most(diff, metric, utf8)]
    lines += _table(diff, limit, metric, utf8)
    lines += _totals(after, f" {signed(diff.growth_of(metric), missing='-'):>11}")
    if before.unique is not None and after.unique is not None:
        lines.append(_change(before.unique, after.unique, "unique"))
    ranked = diff.ranked(metric)
    for p in ranked[:1] if limit is not None else ranked:
        lines += ["", p.diff.render(fmt, limit=limit, show_path=show_path).rstrip("\n")]
    b, a = before.totals, after.totals
    lines.append("tree " + "    ".join(_change(getattr(b, n), getattr(a, n), n) for n in ("rss", "pss", "uss")))
    return "\n".join(lines) + "\n"


def tree_brief(diff: TreeDiff, rows: int, metric: str) -> str:
    """The text of `TreeDiff.brief`: the process that grew most, then its own diff in brief (short
    enough for pytest's assertion message; `render()` has the table of every process)."""
    ranked = diff.ranked(metric)
    lines = [_grew_most(diff, metric, None)]
    if ranked:
        lines += ranked[0].diff.brief(rows).splitlines()
    return "\n".join(lines) + "\n"
