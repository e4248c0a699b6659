"""`Probe`: one process under watch — a baseline snapshot, exact peaks, and readings against them.

Everything a probe hands out remembers the snapshots it came from (`Reading`, `NewMappings`), so a
failing `assert probe.rss < "64MiB"` can explain itself with the pmap-formatted diff. No pytest here:
the fixtures in `plugin` wrap this.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Optional

from .._engine.acquire import PeakReset, check_pid, check_same_process, snapshot, tgid_of
from .._engine.diff import MapDiff, MappingChange
from .._engine.mapping import Mapping
from .._engine.procfs import ProcFS, default_procfs
from .._engine.snapshot import Snapshot
from .._engine.totals import METRICS, Totals
from ..errors import NotSupported, ProcessGone, hide_from_tracebacks
from ..size import Size

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

if TYPE_CHECKING:
    import subprocess

    from ..size import SizeLike

__all__ = ["NewMappings", "Probe", "Reading", "exit_status"]

#: Rows of the diff shown when a reading explains itself.
EXPLAIN_ROWS = 15


class Reading(Size):
    """A `Size` read from a process, that can say where it came from.

    `what` names it (`"writeable_private"`, `"growth.uss"`, `"peak_rss"`); `before` and `after` are
    the snapshots behind it, and `explain()` is the pmap-formatted diff between them.
    """

    what: str
    before: Snapshot
    after: Snapshot
    note: str
    ignore: Optional[Callable[[Mapping], bool]]
    """The mappings the explanation leaves out (`pytest_pmap_ignore_mapping`), or None."""

    @classmethod
    def of_value(cls, value: int, what: str, before: Snapshot, after: Snapshot, note: str = "",
                 ignore: Optional[Callable[[Mapping], bool]] = None) -> Reading:
        """A reading of `value` bytes named `what`, taken from `before` -> `after`."""
        reading = int.__new__(cls, value)
        reading.what, reading.before, reading.after, reading.note = what, before, after, note
        reading.ignore = ignore
        return reading

    def explain(self, rows: int = EXPLAIN_ROWS) -> str:
        """What changed in the process between the two snapshots, as `MapDiff.render` prints it,
        after the note (why the peak is since start, or that the process has exited), if any."""
        text = self._diff(rows)
        return f"{self.note}\n{text}" if self.note else text

    def brief(self, rows: int = 3) -> str:
        """`explain()` in a few lines (short enough for pytest's assertion message): the note, the
        column titles, the `rows` mappings that moved most, and pmap -d's summary line before -> after."""
        brief = MapDiff.between(self.before, self.after, self.ignore).brief(rows, self.metric)
        return "".join(f"{line}\n" for line in self.note.splitlines()) + brief

    @property
    def metric(self) -> str:
        """The metric this reading is of (`uss` for `growth.uss`): a tree's diff ranks its processes by
        it; `peak_rss` for a peak, by which a tree's diff ranks each process's peak since the baseline."""
        name = self.what.rpartition(".")[2]
        if name in ("peak_rss", "peak_growth"):
            return "peak_rss"
        return name if name in METRICS else "mapped" if name.startswith("new_") else "rss"

    def _diff(self, rows: int) -> str:
        return MapDiff.between(self.before, self.after, self.ignore).render(limit=rows, metric=self.metric)


class NewMappings(list[MappingChange]):
    """The groups of mappings `Probe.new_mappings()` found, with the diff they came from."""

    def __init__(self, changes: Iterable[MappingChange], diff: MapDiff) -> None:
        super().__init__(changes)
        self.diff = diff
        """The whole diff the groups were picked from."""

    def __repr__(self) -> str:
        if not self:
            return "NewMappings([])"
        shown = ", ".join(f"{c.kind}{c.start:x} {c.new} new {c.path or '[anon]'}" for c in self[:3])
        more = f", ... {len(self) - 3} more" if len(self) > 3 else ""
        return f"NewMappings([{shown}{more}])"


def exit_status(returncode: Optional[int]) -> str:
    """How a process ended, from `Popen.returncode`: `exited with status 1`, `was killed by SIGSEGV`."""
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Probe:
    """A process under watch: its `baseline` snapshot and live readings against it.

    Every live total (`rss`, `uss`, `writeable_private`, ...) is a fresh reading of the process,
    as a `Reading`. `mark()` takes a new baseline and resets the process's peak RSS (VmHWM) where
    the kernel allows it, so `peak_rss` is the true peak since the baseline.
    """

    def __init__(
        self,
        pid: Optional[int] = None,
        *,
        procfs: Optional[ProcFS] = None,
        ignore: Optional[Callable[[Mapping], bool]] = None,
        on_snapshot: Optional[Callable[[Probe, Snapshot], None]] = None,
    ) -> None:
        self.procfs = procfs or default_procfs()
        self.pid = os.getpid() if pid is None else tgid_of(check_pid(pid, self.procfs), self.procfs)
        """The process watched (a thread ID given means its process)."""
        self.ignore = ignore
        """Mappings for which this returns true are left out of diffs and new mappings."""
        self.on_snapshot = on_snapshot
        self.peak_note = ""
        """Why `peak_rss` is the peak since the process started rather than since the baseline ("" when exact)."""
        self.ended = ""
        """How the process ended, once readings come from its last snapshot ("" while it runs)."""
        self.last: Optional[Snapshot] = None
        """The latest snapshot taken: what readings fall back on once the process has exited."""
        self.process: Optional[subprocess.Popen[bytes]] = None
        """The process object, when the probe's owner started it (`pmap_spawn`)."""
        self._reset_peak = PeakReset(self.procfs, self.pid)
        self.baseline = self.mark()

    def __repr__(self) -> str:
        return f"<Probe pid={self.pid}>"

    # -- snapshots --------------------------------------------------------------------------------
    def snapshot(self, detail: bool = True) -> Snapshot:
        """A snapshot of the process now; once it has exited, the last one taken before.

        Raises `PidReused` when the process watched has exited and its PID names another process,
        and `ProcessGone` when it exited before any snapshot after its baseline: what it did since
        is unknown, and the baseline again would read as no change at all.
        """
        return self._take(detail, fall_back=True)

    def _take(self, detail: bool, fall_back: bool) -> Snapshot:
        """A snapshot now; once the process has ended, the last one (`fall_back`, and one was taken
        after the baseline) or `ProcessGone`."""
        if self.process is not None and self.last is not None and self.process.poll() is not None:
            # our child has exited and was reaped: its PID may name another process now
            return self._ended(exit_status(self.process.returncode), fall_back)
        try:
            snap = snapshot(self.pid, detail=detail, procfs=self.procfs)
        except ProcessGone:
            if self.last is None:
                raise
            return self._ended("exited", fall_back)
        if self.last is not None:
            check_same_process(self.last, snap)
        self.last = snap
        if self.on_snapshot is not None:
            self.on_snapshot(self, snap)
        return snap

    def _ended(self, how: str, fall_back: bool) -> Snapshot:
        if not fall_back:
            raise ProcessGone(f"PID {self.pid} {how}: no new baseline can be taken of a process that has ended")
        if self.last is self.baseline:
            raise ProcessGone(f"PID {self.pid} {how} before it could be read after its baseline: what it used since "
                              "is unknown, not zero; read it while it runs (before waiting for it to end)")
        self.ended = f"PID {self.pid} {how}: readings are from its last snapshot"
        return self.last  # type: ignore[return-value]  # only called once there is one

    def mark(self) -> Snapshot:
        """Take a new baseline now, and reset the peak RSS so that `peak_rss` counts from here.
        Raises `ProcessGone` once the process has ended."""
        why = self._reset_peak()  # refused, or no clear_refs here; a process that is gone fails the snapshot next
        self.baseline = self._take(True, fall_back=False)
        self.peak_note = f"{why}; peak_rss is the peak since PID {self.pid} started" if why else ""
        return self.baseline

    # -- readings ---------------------------------------------------------------------------------
    def reading(self, what: str, after: Optional[Snapshot] = None) -> Reading:
        """One reading by name, from `after` (a snapshot taken now when None): a metric (`uss`),
        a metric's growth (`uss_growth`), `peak_rss` or `peak_growth`."""
        after = self.snapshot() if after is None else after
        note = self.ended
        if what in METRICS:
            value = getattr(after.totals, what)
            if value is None:
                raise NotSupported(after.missing(what))
        elif what.endswith("_growth") and what[: -len("_growth")] in METRICS:
            name = what[: -len("_growth")]
            a, b = getattr(after.totals, name), getattr(self.baseline.totals, name)
            if a is None or b is None:
                raise NotSupported((after if a is None else self.baseline).missing(name))
            value = a - b
            what = f"growth.{name}"
        elif what in ("peak_rss", "peak_growth"):
            note = "\n".join(filter(None, (self.peak_note, self.ended)))
            value = after.peak_rss
            start = self.baseline.status_size("VmRSS")
            if value is None or (start is None and what == "peak_growth"):
                raise NotSupported(f"PID {self.pid}: the kernel wrote no VmHWM / VmRSS lines in its status file")
            if what == "peak_growth":
                value = value - start
        else:
            raise ValueError(f"{what!r} is not a reading: use a metric ({', '.join(METRICS)}), "
                             "a metric with _growth, peak_rss or peak_growth")
        return Reading.of_value(value, what, self.baseline, after, note, self.ignore)

    @property
    def mapped(self) -> Reading:
        """Address space mapped now (pmap -d's `mapped`)."""
        return self.reading("mapped")

    @property
    def writeable_private(self) -> Reading:
        """Private writeable address space now (pmap -d's `writeable/private`)."""
        return self.reading("writeable_private")

    @property
    def shared(self) -> Reading:
        """Shared address space now (pmap -d's `shared`)."""
        return self.reading("shared")

    @property
    def rss(self) -> Reading:
        """Resident set size now."""
        return self.reading("rss")

    @property
    def pss(self) -> Reading:
        """Proportional set size now."""
        return self.reading("pss")

    @property
    def uss(self) -> Reading:
        """Unique set size now (Private_Clean + Private_Dirty)."""
        return self.reading("uss")

    @property
    def private_dirty(self) -> Reading:
        """Private pages written to, now."""
        return self.reading("private_dirty")

    @property
    def anonymous(self) -> Reading:
        """Resident anonymous memory now."""
        return self.reading("anonymous")

    @property
    def swap(self) -> Reading:
        """Memory swapped out now."""
        return self.reading("swap")

    @property
    def growth(self) -> Totals:
        """Every metric now minus at the baseline (signed), as readings; None where not reported."""
        after = self.snapshot()
        values: dict[str, Optional[Size]] = {}
        for name in METRICS:
            try:
                values[name] = self.reading(f"{name}_growth", after)
            except NotSupported:
                values[name] = None
        return Totals(**values)

    @property
    def peak_rss(self) -> Reading:
        """The highest RSS since the baseline (VmHWM after a reset at `mark()`)."""
        return self.reading("peak_rss")

    @property
    def peak_growth(self) -> Reading:
        """How far the peak RSS since the baseline rose above the RSS at the baseline."""
        return self.reading("peak_growth")

    def diff(self, after: Optional[Snapshot] = None) -> MapDiff:
        """What changed since the baseline, mapping by mapping (up to `after`, or now)."""
        return MapDiff.between(self.baseline, self.snapshot() if after is None else after, self.ignore)

    def new_mappings(self, anon: Optional[bool] = None, larger_than: SizeLike = 0,
                     after: Optional[Snapshot] = None) -> NewMappings:
        """Groups of mappings with more than `larger_than` of address space new since the baseline.

        `anon=True` keeps anonymous memory only, `anon=False` file mappings only.
        """
        diff = self.diff(after)
        return NewMappings(diff.new_mappings(anon=anon, larger_than=larger_than), diff)
