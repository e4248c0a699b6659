"""Process trees: a process and all its descendants, each read through the one acquisition path,
measured as one (`TreeSnapshot`), with the pages they share counted once (`unique`).

Descendants come from `/proc/PID/task/*/children`; on a kernel without that file (built without
CONFIG_PROC_CHILDREN), from a scan of every process's parent. A process that exits while the
tree is walked is left out and named in `exited`: the tree is whole for the processes it holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Optional

from ..errors import AccessDenied, PmapError, ProcessGone, SnapshotFileError, UsageError, hide_from_tracebacks
from ..size import Size
from .acquire import snapshot
from .jsonfiles import read_json
from .mapping import Mapping
from .pages import count_unique
from .procfs import ProcFS, default_procfs
from .render.treetext import tree_table
from .snapshot import Snapshot
from .treediff import TreeDiff

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["TreeSnapshot", "descendants", "load_snapshot", "read_tree", "snapshot_tree"]


@dataclass(frozen=True, eq=False)
class TreeSnapshot(Snapshot):
    """A process and all its descendants at one moment, measured as one.

    A `TreeSnapshot` is a `Snapshot` of the whole tree: `pid`, `cmdline` and `start_time` are the
    root process's; the totals (`rss`, `pss`, `uss`, `mapped`, ...) are summed over every process;
    `mappings` holds every process's mappings, process after process; `render()` prints every
    process as `pmap PID1 PID2 ...` would; `diff()` gives a `TreeDiff`. `processes` has each
    process's own `Snapshot`, in tree order (a parent before its children), and `unique` the
    resident memory the tree holds that no other process maps, each page counted once.
    """

    FORMAT: ClassVar[str] = "pytest-pmap-tree"
    VERSION: ClassVar[int] = 1
    is_tree: ClassVar[bool] = True

    processes: dict[int, Snapshot] = field(default_factory=dict)
    """PID -> the process's own snapshot, in tree order (each knows its parent: `Snapshot.ppid`)."""
    exited: dict[int, str] = field(default_factory=dict)
    """PID -> why a process found in the tree is not in it: it exited (or turned zombie) while the tree was read."""
    unique: Optional[Size] = None
    """Resident memory of the tree's processes that no process outside the tree maps, each page
    counted once however many of the tree's processes map it; None where the kernel will not say
    (see `unique_note`): use `pss` there."""
    unique_note: str = ""
    """Why `unique` is None, or which processes it could not count."""

    @classmethod
    def of(cls, processes: dict[int, Snapshot], exited: Optional[dict[int, str]] = None,
           unique: Optional[int] = None, unique_note: str = "") -> TreeSnapshot:
        """The tree of `processes` (the root first), as read."""
        if not processes:
            raise UsageError("a process tree needs at least its root process")
        root = next(iter(processes.values()))
        return cls(
            pid=root.pid,
            mappings=[m for snap in processes.values() for m in snap.mappings],
            raw_cmdline=root.raw_cmdline,
            comm=root.comm,
            state=root.state,
            start_time=root.start_time,
            start_stack=root.start_stack,
            taken_at=root.taken_at,
            detail=all(snap.detail for snap in processes.values()),
            shm_minor=root.shm_minor,
            ppid=root.ppid,
            processes=dict(processes),
            exited=dict(exited or {}),
            unique=None if unique is None else Size.of(unique),
            unique_note=unique_note,
        )

    @property
    def root(self) -> Snapshot:
        """The root process's own snapshot."""
        return self.processes[self.pid]

    def children(self, pid: int) -> list[Snapshot]:
        """The processes of the tree whose parent is `pid`."""
        return [snap for snap in self.processes.values() if snap.ppid == pid and snap.pid != self.pid]

    # -- totals: every process's, summed --------------------------------------------------------
    @cached_property
    def _field_sums(self) -> dict[str, int]:
        sums = [snap._field_sums for snap in self.processes.values()]
        common = set.intersection(*(set(s) for s in sums)) if sums else set()
        return {name: sum(s[name] for s in sums) for name in common}

    def status_size(self, key: str) -> Optional[Size]:
        """A `kB` line of every process's status (`VmRSS`, `VmHWM`, ...) summed; None when one lacks it."""
        values = [snap.status_size(key) for snap in self.processes.values()]
        return None if any(v is None for v in values) else Size.of(sum(v for v in values if v is not None))

    @property
    def peak_rss(self) -> Optional[Size]:
        """Every process's `VmHWM` summed: an upper bound of the tree's peak RSS (the processes may
        have peaked at different moments); a process that exited before the reading is not in it."""
        return self.status_size("VmHWM")

    # -- views ----------------------------------------------------------------------------------
    def render(
        self,
        fmt: str = "d",
        *,
        quiet: bool = False,
        show_path: bool = False,
        range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
        utf8: Optional[bool] = None,
    ) -> str:
        """What `pmap [-d|-x|-X|-XX] PID1 PID2 ...` prints for every process of the tree, in tree order."""
        return "".join(snap.render(fmt, quiet=quiet, show_path=show_path, range=range, utf8=utf8)
                       for snap in self.processes.values())

    def table(self, *, utf8: Optional[bool] = None) -> str:
        """The per-process table (PID, PPID, RSS, PSS, USS, command), the tree's totals and `unique`."""
        return tree_table(self, utf8)

    def diff(self, other: Snapshot, ignore: Optional[Callable[[Mapping], bool]] = None) -> TreeDiff:
        """The `TreeDiff` from `other` (an earlier snapshot of the tree) to this one."""
        if not isinstance(other, TreeSnapshot):
            raise UsageError(f"cannot diff the process tree of PID {self.pid} with the single process {other.pid}: "
                             "take both with the tree (snapshot_tree(), or `pytest-pmap snapshot --tree` and "
                             "`pytest-pmap diff --tree`)")
        return TreeDiff(other, self, ignore)

    # -- files ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: each process as `Snapshot.to_json()` gives it, and what the tree adds."""
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "root": self.pid,
            "unique": None if self.unique is None else int(self.unique),
            "unique_note": self.unique_note,
            "exited": {str(pid): why for pid, why in self.exited.items()},
            "processes": [snap.to_json() for snap in self.processes.values()],
        }

    @classmethod
    def from_json(cls, data: object, *, source: str = "tree snapshot") -> TreeSnapshot:
        """Rebuild a tree from `to_json()` output; `source` names it in errors."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise SnapshotFileError(f"{source} is not a pytest-pmap tree snapshot (no \"format\": \"{cls.FORMAT}\")")
        if data.get("version") != cls.VERSION:
            raise SnapshotFileError(
                f"{source} is a version {data.get('version')!r} tree snapshot; this pytest-pmap reads version "
                f"{cls.VERSION}: upgrade pytest-pmap, or take the snapshot again"
            )
        try:
            items = data["processes"]
            if not isinstance(items, list) or not items:
                raise ValueError("it holds no process")
            processes: dict[int, Snapshot] = {}
            for i, item in enumerate(items, 1):
                snap = Snapshot.from_json(item, source=f"{source} (process {i})")
                processes[snap.pid] = snap
            if next(iter(processes)) != int(data["root"]):
                raise ValueError(f"its first process is not its root, PID {data['root']}")
            unique = data.get("unique")
            tree = cls.of(processes, {int(pid): str(why) for pid, why in dict(data.get("exited") or {}).items()},
                          None if unique is None else int(unique), str(data.get("unique_note") or ""))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # OverflowError: int(Infinity)
            raise SnapshotFileError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None
        return tree

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TreeSnapshot:
        """Read a tree's snapshot file written by `save()`; any other file is a clear error."""
        what = f"snapshot file {os.fspath(path)!r}"
        data = read_json(path, what, SnapshotFileError)
        if isinstance(data, dict) and data.get("format") == Snapshot.FORMAT:
            raise SnapshotFileError(f"{what} is a single process's snapshot, not a tree's: read it with Snapshot.load()")
        return cls.from_json(data, source=what)

    def __repr__(self) -> str:
        return (f"<TreeSnapshot pid={self.pid} {len(self.processes)} processes rss={self.totals.rss} "
                f"unique={self.unique} cmd={self.cmdline[:60]!r}>")


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """A snapshot file of either kind: a `TreeSnapshot` for a tree's file, else a `Snapshot`."""
    what = f"snapshot file {os.fspath(path)!r}"
    data = read_json(path, what, SnapshotFileError)
    if isinstance(data, dict) and data.get("format") == TreeSnapshot.FORMAT:
        return TreeSnapshot.from_json(data, source=what)
    return Snapshot.from_json(data, source=what)


# -- the walk -----------------------------------------------------------------------------------------


def descendants(pid: int, procfs: Optional[ProcFS] = None) -> Iterator[int]:
    """The descendants of process `pid`, each before its own children, from `ProcFS.children` (which
    scans every process's parent on a kernel without `task/*/children`). A process that exits
    meanwhile is still listed, its children too when they were seen first."""
    fs = procfs or default_procfs()
    seen = {pid}
    stack = [pid]
    while stack:
        parent = stack.pop()
        kids = sorted(set(fs.children(parent)) - seen)  # [] once it has exited: its children went elsewhere
        if parent != pid:
            yield parent
        stack.extend(reversed(kids))
        seen.update(kids)


def snapshot_tree(
    pid: Optional[int] = None, *, detail: bool = True, unique: bool = True, procfs: Optional[ProcFS] = None,
) -> TreeSnapshot:
    """A snapshot of process `pid` (the calling process when None) and all its descendants.

    Each process is read as `snapshot()` reads it, with the same guarantees (a whole map or none);
    one that exits or turns zombie while the tree is read is left out and named in `exited`.
    `detail=False` reads `maps` and `smaps_rollup` of each (cheaper; no per-mapping Rss, and no
    `unique`). `unique=False` skips counting the tree's unique pages (which reads pagemap).
    Raises `ProcessGone` when the root itself is not there.
    """
    fs = procfs or default_procfs()
    root = snapshot(pid, detail=detail, procfs=fs)
    return read_tree(root, descendants(root.pid, fs), detail=detail, unique=unique, procfs=fs)


def read_tree(
    root: Snapshot, members: Iterable[int], *, detail: bool = True, unique: bool = True,
    procfs: Optional[ProcFS] = None,
) -> TreeSnapshot:
    """The tree of `root` (its snapshot, just taken) and the processes `members` (its descendants,
    as found by whoever started them), each read as `snapshot()` reads it; one that has exited is
    left out and named in `exited`. The processes are put in tree order: a parent before its
    children, a process whose parent is not in the tree (an orphan handed to a subreaper) after
    the root's own descendants."""
    fs = procfs or default_procfs()
    processes = {root.pid: root}
    exited: dict[int, str] = {}
    for member in members:
        if member in processes or member in exited:
            continue
        try:
            processes[member] = snapshot(member, detail=detail, procfs=fs)
        except ProcessGone as exc:
            exited[member] = str(exc)
        except AccessDenied as exc:  # the tree's totals would leave it out: name the program, never a partial sum
            raise AccessDenied(f"{exc} ({_program(fs, member)}, a process of the tree of PID {root.pid}: the tree "
                               "cannot be measured without it)") from None
    count, note = None, "unique was not asked for (unique=False)"
    if unique:
        pages = count_unique(fs, processes.values())
        count, note = pages.unique, pages.note
    return TreeSnapshot.of(_tree_order(root.pid, processes), exited, count, note)


def _program(fs: ProcFS, pid: int) -> str:
    """`PID N is passwd`: the program of a process, from its stat, which anyone may read."""
    try:
        return f"PID {pid} is {fs.stat(pid).comm.decode('utf-8', 'replace')}"
    except PmapError:
        return f"PID {pid}"


def _tree_order(root: int, processes: dict[int, Snapshot]) -> dict[int, Snapshot]:
    """`processes` with each parent before its children (children by PID), the root first."""
    children: dict[Optional[int], list[int]] = {}
    for pid, snap in sorted(processes.items()):
        if pid != root:
            children.setdefault(snap.ppid if snap.ppid in processes else None, []).append(pid)
    ordered: dict[int, Snapshot] = {}
    for top in [root, *children.get(None, [])]:
        stack = [top]
        while stack:
            pid = stack.pop()
            if pid not in ordered:  # (parents read at different moments could name each other)
                ordered[pid] = processes[pid]
                stack.extend(reversed(children.get(pid, [])))
    ordered.update(processes)  # any left over keeps its place after the rest
    return ordered
