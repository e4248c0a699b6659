"""`TreeProbe`: a process and all its descendants under watch, measured as one.

Every reading covers the tree as it is at that moment: a worker started after the baseline counts
as grown by all it holds, one that exited as shrunk by all it held. The peak (`peak_rss`) is the
sum of each process's high-water mark (VmHWM) since the baseline: an upper bound of the tree's
peak, since its processes may peak at different moments; a process that exited before the reading
is not in it. No pytest here: the fixtures and the marker's `tree=True` build on it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Optional

from .._engine.acquire import PeakReset, check_same_process, snapshot
from .._engine.mapping import Mapping
from .._engine.procfs import ProcFS
from .._engine.snapshot import Snapshot
from .._engine.totals import SUMMED
from .._engine.tree import TreeSnapshot, descendants, read_tree
from .._engine.treediff import TreeDiff, nothing_of
from ..errors import PmapError, ProcessGone, hide_from_tracebacks
from .probe import Probe, exit_status

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["TreeProbe"]


class TreeProbe(Probe):
    """A `Probe` on a process tree: `pid` and all its descendants, measured as one.

    Its snapshots are `TreeSnapshot`s and its diffs `TreeDiff`s; its readings (`rss`, `uss`,
    `growth`, `peak_rss`, ...) and budgets are the tree's totals. `members` says who the
    descendants are now (by default, the processes below `pid` in the kernel's tree; for a process
    `pmap_spawn` started, also the orphans it left, handed to pytest as their subreaper). Once the
    root has exited, the tree is what remains of it (the root holds nothing); once nothing remains,
    readings come from the last snapshot, as a `Probe`'s do.
    """

    baseline: TreeSnapshot
    last: Optional[TreeSnapshot]

    def __init__(
        self,
        pid: Optional[int] = None,
        *,
        procfs: Optional[ProcFS] = None,
        ignore: Optional[Callable[[Mapping], bool]] = None,
        on_snapshot: Optional[Callable[[Probe, Snapshot], None]] = None,
        members: Optional[Callable[[], Iterable[int]]] = None,
        process: Optional[subprocess.Popen[bytes]] = None,
    ) -> None:
        self._members = members
        self._spawned = process  # known from the start: the baseline may find the root already gone
        self._seen: dict[int, int] = {}
        """Every process seen in a snapshot of the tree and maybe still there, {PID: start time}."""
        super().__init__(pid, procfs=procfs, ignore=ignore, on_snapshot=on_snapshot)
        self.process = process

    def __repr__(self) -> str:
        return f"<TreeProbe pid={self.pid}>"

    def members(self) -> list[int]:
        """The descendants of the root now (zombies included), and what remains of the tree: every
        process seen in an earlier snapshot that is still there (the same PID and start time), and
        the processes below it. A process whose parent exits is handed to init or to a subreaper,
        out of the root's kernel tree: it is still the tree's (docs/trees.md, "When the root exits")."""
        if self._members is not None:
            found = dict.fromkeys(self._members())
        else:
            found = dict.fromkeys(descendants(self.pid, self.procfs) if self._is_there(self.pid) else ())
        for pid in [pid for pid in self._seen if pid != self.pid and pid not in found]:
            if self._is_there(pid):
                found[pid] = None
                found.update(dict.fromkeys(descendants(pid, self.procfs)))
        found.pop(self.pid, None)
        return list(found)

    def _is_there(self, pid: int) -> bool:
        """True while `pid` is the process seen in the tree (any process, for one not seen yet). A
        descendant seen that is gone is forgotten (its PID, reused, is another's); the root is not."""
        start = self._seen.get(pid)
        if start is None:
            return True
        try:
            there = self.procfs.stat(pid).start_time == start
        except PmapError:
            there = False
        if not there and pid != self.pid:
            del self._seen[pid]
        return there

    def snapshot(self, detail: bool = True, *, unique: bool = False) -> TreeSnapshot:
        """A snapshot of the tree now (with its `unique` pages counted if asked: that reads every
        process's pagemap); once all of it has exited, the last one taken before."""
        return self._take(detail, fall_back=True, unique=unique)

    def _take(self, detail: bool, fall_back: bool, unique: bool = False) -> TreeSnapshot:
        spawned = self._spawned
        root: Optional[Snapshot] = None
        there = spawned.poll() is None if spawned is not None else self._is_there(self.pid)
        if there:  # once gone (reaped, or another start time), its PID may name another process
            with contextlib.suppress(ProcessGone):  # exited: the tree is what remains of it
                root = snapshot(self.pid, detail=detail, procfs=self.procfs)
        members = self.members()
        emptied = None
        if root is None:
            if not members:
                return self._ended_tree(exit_status(spawned.returncode) if spawned is not None else "exited", fall_back)
            root = emptied = self._emptied()
        tree = read_tree(root, members, detail=detail, unique=unique, procfs=self.procfs)
        if emptied is not None and len(tree.processes) == 1:  # the rest exited while they were read
            return self._ended_tree("exited", fall_back)
        if self.last is not None:
            check_same_process(self.last, tree)
        self.last = tree
        self._seen.update((pid, snap.start_time) for pid, snap in tree.processes.items())
        if self.on_snapshot is not None:
            self.on_snapshot(self, tree)
        return tree

    def _ended_tree(self, how: str, fall_back: bool) -> TreeSnapshot:
        """The last snapshot, once the root and all its descendants have exited (see `Probe._ended`)."""
        if self.last is None:
            raise ProcessGone(f"PID {self.pid} {how}, and none of its descendants is left: there is no tree to read")
        if fall_back and self.last is self.baseline:
            raise ProcessGone(f"PID {self.pid} {how}, and every process of its tree exited too, before the tree "
                              "could be read after its baseline: what they used since is unknown, not zero; read "
                              "the tree while it runs (before waiting for it to end)")
        self._ended(how, fall_back)  # raises when readings cannot fall back on the last snapshot
        return self.last

    def _emptied(self) -> Snapshot:
        """The root once it has exited while its descendants run on: the process as last seen (or
        as it was started), holding nothing."""
        last = self.last.root if self.last is not None else None
        if last is not None:
            return nothing_of(last, time.time())
        args = self._spawned.args if self._spawned is not None else []
        argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        return Snapshot(pid=self.pid, mappings=[], raw_cmdline=b"".join(os.fsencode(a) + b"\0" for a in argv),
                        state="X", detail=False, rollup=dict.fromkeys(SUMMED, 0))

    def mark(self) -> TreeSnapshot:
        """Take a new baseline of the whole tree now, and reset every process's peak RSS, so that
        `peak_rss` counts from here. Raises `ProcessGone` once the whole tree has ended."""
        notes = [self._reset_peak()]
        notes += [PeakReset(self.procfs, pid)() for pid in self.members()]
        self.baseline = self._take(True, fall_back=False)
        why = next((n for n in notes if n), "")
        self.peak_note = f"{why}; peak_rss is the sum of peaks since each process started" if why else ""
        return self.baseline

    def diff(self, after: Optional[Snapshot] = None) -> TreeDiff:
        """What changed in the tree since the baseline: processes that appeared and exited, and
        each process's `MapDiff` (up to `after`, or now)."""
        now = self.snapshot() if after is None else after
        if not isinstance(now, TreeSnapshot):
            raise TypeError(f"a tree probe's diff needs a TreeSnapshot, not {type(now).__name__}")
        return TreeDiff(self.baseline, now, self.ignore)
