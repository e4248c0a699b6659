"""`TreeDiff`: what changed in a process tree between two snapshots — the processes that appeared
and exited, and a `MapDiff` for each process in both.

A process is the same one in both when its PID and its start time are: a PID reused in between
is one process that exited and another that appeared. A process that appeared counts as grown by
all it holds (its diff is from nothing), one that exited as shrunk by all it held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..errors import warn
from ..size import Size
from .diff import Ignore, MapDiff, check_render, other_process
from .render.treetext import tree_brief, tree_diff
from .snapshot import Snapshot
from .totals import METRICS, SUMMED

if TYPE_CHECKING:
    from .tree import TreeSnapshot

__all__ = ["ProcessChange", "TreeDiff", "nothing_of"]


def nothing_of(snap: Snapshot, taken_at: float, state: str = "X") -> Snapshot:
    """The process of `snap` with nothing mapped (every total zero, state X: dead), at `taken_at`:
    what a process that appeared is diffed from, and what one that exited is diffed to."""
    return Snapshot(
        pid=snap.pid, mappings=[], raw_cmdline=snap.raw_cmdline, comm=snap.comm, state=state,
        start_time=snap.start_time, start_stack=snap.start_stack, taken_at=taken_at, detail=False,
        rollup=dict.fromkeys(SUMMED, 0), shm_minor=snap.shm_minor, ppid=snap.ppid,
    )


@dataclass(frozen=True)
class ProcessChange:
    """One process of a `TreeDiff`: how it changed, its snapshot, and its own `MapDiff`."""

    kind: str
    """`+` appeared, `-` exited, `~` its map changed, ` ` (a space) nothing changed."""
    snapshot: Snapshot
    """The process now; its last snapshot if it exited."""
    diff: MapDiff
    """Its diff: from nothing when it appeared, to nothing when it exited."""

    @property
    def pid(self) -> int:
        """The process's ID."""
        return self.snapshot.pid

    def growth(self, metric: str = "rss") -> Optional[Size]:
        """How much the process grew in `metric` (signed); None when the kernel did not report it."""
        value = getattr(self.diff.growth, metric)
        return None if value is None else Size.of(value)


class TreeDiff(MapDiff):
    """The difference between two snapshots of one process tree: `before` and `after`.

    As a `MapDiff`, it holds every process's changed mappings (`changes`, `added`, `new_mappings()`,
    each `MappingChange` naming its `pid`) and the tree's `growth`. `appeared` and `exited` are the
    processes only one snapshot has; `processes` the `MapDiff` of each process in both.
    """

    before: TreeSnapshot
    after: TreeSnapshot

    def __init__(self, before: TreeSnapshot, after: TreeSnapshot, ignore: Optional[Ignore] = None) -> None:
        why = other_process(before, after)
        if why:
            warn(f"{why}: the diff compares two unrelated process trees")
        self.before = before
        self.after = after
        self.ignore = ignore
        self.appeared: dict[int, Snapshot] = {}
        """PID -> snapshot of each process `after` has and `before` has not."""
        self.exited: dict[int, Snapshot] = {}
        """PID -> the last snapshot of each process `before` has and `after` has not."""
        self.processes: dict[int, MapDiff] = {}
        """PID -> the `MapDiff` of each process both have."""
        self.by_process: list[ProcessChange] = []
        """Every process in tree order, then those that exited."""
        for pid, snap in after.processes.items():
            old = before.processes.get(pid)
            if old is not None and old.start_time == snap.start_time:
                self.processes[pid] = diff = MapDiff(old, snap, ignore)
                self.by_process.append(ProcessChange("~" if diff.changes else " ", snap, diff))
            else:
                self.appeared[pid] = snap
                self.by_process.append(ProcessChange("+", snap, MapDiff(nothing_of(snap, before.taken_at), snap, ignore)))
        for pid, old in before.processes.items():
            if pid not in self.processes:
                self.exited[pid] = old
                self.by_process.append(ProcessChange("-", old, MapDiff(old, nothing_of(old, after.taken_at), ignore)))
        self.changes = [c for p in self.by_process for c in p.diff.changes]

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, ignore: Optional[Ignore] = None) -> MapDiff:
        """The diff from `before` to `after` (both trees)."""
        return MapDiff.between(before, after, ignore)

    def ranked(self, metric: str = "rss") -> list[ProcessChange]:
        """The processes that moved, the one that grew most in `metric` first (then by mapped change)."""
        if metric not in METRICS:
            raise ValueError(f"{metric!r} is not a metric: use one of {', '.join(METRICS)}")
        moved = [p for p in self.by_process if p.kind != " " or p.growth(metric)]
        return sorted(moved, key=lambda p: (p.growth(metric) or 0, p.growth("mapped") or 0), reverse=True)

    def __bool__(self) -> bool:
        return bool(self.changes or self.appeared or self.exited)

    def render(self, fmt: str = "x", *, limit: Optional[int] = None, show_path: bool = False, metric: str = "rss") -> str:
        """The per-process table (PID, PPID, RSS, PSS, USS, the growth of `metric`, command), the
        tree's totals, then the pmap-formatted diff of each process that moved, the one that grew
        most first. `limit` keeps that many processes in the table and rows in a diff, and shows the
        diff of the process that grew most only."""
        check_render(fmt, limit)
        return tree_diff(self, fmt, limit, show_path, metric)

    def brief(self, rows: int = 3, metric: str = "rss") -> str:
        """`render()` in a few lines: which process grew most, and its own diff in brief."""
        return tree_brief(self, rows, metric)

    def __repr__(self) -> str:
        return (f"<TreeDiff pid={self.after.pid} +{len(self.appeared)} processes -{len(self.exited)} processes "
                f"{len(self.changes)} mapping changes>")
