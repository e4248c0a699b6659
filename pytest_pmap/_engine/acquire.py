"""The one acquisition path: a PID in, a whole `Snapshot` (or `ProcessGone`) out.

The library's `snapshot()`, the fixtures' probes, the per-test readings and the `pytest-pmap`
command all read a process through here, so they share its guarantees: a thread ID means its
process; a process whose main thread has exited is read through a live thread; a process that
exits, turns zombie or has its PID reused while it is read raises `ProcessGone` (never a partial
map); and a kernel without smaps_rollup is read through smaps.
"""

from __future__ import annotations

import os
from _thread import get_native_id  # the builtin beneath threading's: nothing to import
from collections import namedtuple
from collections.abc import Callable, Iterator

from ..errors import NotSupported, PidReused, PmapError, ProcessGone, UsageError, hide_from_tracebacks
from .parse.fields import parse_rollup
from .parse.locate import locate_maps, locate_smaps
from .parse.run import Run
from .parse.status import Stat
from .procfs import ProcFS, default_procfs, task_file
from .render.names import Names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional

    from .parse.fields import FieldValue
    from .snapshot import Snapshot

    class _TargetFields(NamedTuple):
        tgid: int
        """The process (thread group) ID."""
        thread: Optional[int]
        """The live thread its map is read through when its main thread has exited; None otherwise."""
        stat: Stat
        """Its stat before the read (the start of the stack from the thread read through)."""
        cmdline: bytes
        """`/proc/PID/cmdline` as read."""
        defunct: bool = False
        """True for a zombie with no live thread (only where `locate` was told to allow one): its map is empty."""
        status: Optional[dict[str, str]] = None
        """Its status, read (to learn its thread group) just before the map; None when the PID given was a thread's."""
else:  # the command imports neither `typing` nor `dataclasses` (see _engine/__init__.py)
    _TargetFields = namedtuple("_TargetFields", "tgid thread stat cmdline defunct status", defaults=(False, None))

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = [
    "ATTEMPTS", "PeakReset", "ReadAgain", "Target", "check_pid", "check_same_process", "finish", "has_rollup",
    "locate", "map_thread", "shm_minor", "snapshot", "tgid_of",
]


class Target(_TargetFields):
    """A process about to be read: who it is, and what a listing's header line shows of it (see
    `_TargetFields`)."""

    __slots__ = ()

    def names(self, fs: ProcFS) -> Names:
        """pmap's names for this process's mappings."""
        return Names(self.stat.start_stack, shm_minor() if fs.root == "/proc" else None)

    def file(self, name: str) -> str:
        """The name of one of its files, through the live thread when it is read through one."""
        return task_file(self.thread, name)


def locate(pid: Optional[int], fs: ProcFS, *, allow_defunct: bool = False, allow_kernel_thread: bool = False,
           as_pmap: bool = False) -> Target:
    """Who `pid` is (the calling process when None), before its map is read.

    Raises `UsageError` for a value that cannot be a PID, `ProcessGone` for a process that is not
    there, or that is a zombie with no live thread unless `allow_defunct`, and `NotSupported` for
    a kernel thread unless `allow_kernel_thread` (pmap lists both, with an empty map).

    A process whose main thread has exited is read through a live thread, unless `as_pmap`: then
    it is defunct, as pmap shows it (its own map is empty), and its command line is the one of the
    PID or thread ID given, as pmap reads it.
    """
    pid = os.getpid() if pid is None else check_pid(pid, fs)
    status = fs.status(pid)
    tgid = int(status["Tgid"]) if status.get("Tgid", "").isdigit() else pid
    stat = fs.stat(tgid)
    if stat.is_kernel_thread and not allow_kernel_thread:
        raise NotSupported(
            f"PID {tgid} is a kernel thread ([{stat.comm.decode('utf-8', 'replace')}]): kernel threads have no user "
            "memory map, so there is nothing to read or measure (pmap lists it with an empty map); give the PID "
            "of a user process"
        )
    thread = None
    defunct = False
    if stat.is_zombie:
        thread = None if as_pmap else fs.live_thread(tgid)
        defunct = thread is None
        if defunct and not allow_defunct:
            raise ProcessGone(
                f"PID {tgid} has exited (it is a zombie, not yet reaped by its parent): it has no memory map"
            )
        if thread is not None:  # the main thread's stat no longer shows where the stack is
            stat = stat._replace(start_stack=fs.stat(tgid, thread).start_stack)
    cmdline = fs.cmdline(pid) if as_pmap else fs.cmdline(tgid, thread)
    return Target(tgid, thread, stat, cmdline, defunct, status if tgid == pid else None)


def smaps_runs(fs: ProcFS, target: Target) -> Iterator[Run]:
    """The parser's runs of the target's smaps, each as soon as its part of the file is read."""
    return locate_smaps(fs.chunks(target.tgid, target.file("smaps")))


def maps_runs(fs: ProcFS, target: Target) -> list[Run]:
    """The parser's runs of the target's maps."""
    return locate_maps(fs.read(target.tgid, target.file("maps")))


class ReadAgain(ProcessGone):
    """The process lives on, but changed while its map was read in a way a new read resolves: it
    started a new program (`execve`), so what was read is the old program's map, perhaps cut short,
    or the new one's under the old one's name; or its main thread exited while other threads run
    on, so it is read through one of those now. `snapshot()` reads it again."""


#: How many times `snapshot()` reads a process that keeps changing while it is read.
ATTEMPTS = 3


def finish(fs: ProcFS, target: Target, mapped: bool) -> Stat:
    """Check, after reading, that the map read (`mapped`: it had any mapping) is whole and still
    the same process's; return the state of whoever it was read through (the process, or its
    live thread). Raises `ProcessGone` when it is not: nothing read may be used then.

    The kernel ends a read of maps or smaps early, without an error, once the process has let go
    of its memory map (it is exiting): from then on stat shows the start of its stack as 0, also
    while the process still runs its exit (state R or D) or waits as a zombie with its start time
    unchanged. A start of the stack that moved means a new memory map (an `execve`): what was read
    is not the process's map now either.
    """
    pid = target.tgid
    after = fs.stat(pid)
    if after.start_time != target.stat.start_time:
        raise ProcessGone(
            f"PID {pid} was reused while its map was read (start time {target.stat.start_time} became "
            f"{after.start_time}): nothing was recorded"
        )
    if target.thread is not None:
        after = fs.stat(pid, target.thread)
    if target.defunct or after.is_kernel_thread:
        return after
    if after.is_zombie:
        if target.thread is None and fs.live_thread(pid) is not None:
            raise ReadAgain(f"PID {pid}'s main thread exited while its map was read (other threads run on): "
                            "nothing was recorded")
        raise ProcessGone(f"PID {pid} exited while its map was read: nothing was recorded")
    if after.start_stack != target.stat.start_stack:
        if after.start_stack == 0 and "VmSize" not in fs.status(pid, target.thread):
            # no Vm* lines in status: this task has no memory map any more; unless it is a main
            # thread on its way out while other threads run on (not yet a zombie), the process is gone
            if target.thread is None and fs.live_thread(pid) is not None:
                raise ReadAgain(f"PID {pid}'s main thread exited while its map was read (other threads run on): "
                                "nothing was recorded")
            raise ProcessGone(f"PID {pid} exited while its map was read (its memory map is gone): nothing was recorded")
        raise ReadAgain(
            f"PID {pid} started a new program while its map was read (or no longer lets us read it): "
            "nothing was recorded"
        )
    if not mapped:
        raise ProcessGone(f"PID {pid} has no memory map left: it is exiting; nothing was recorded")
    return after


def snapshot(pid: Optional[int] = None, *, detail: bool = True, procfs: Optional[ProcFS] = None) -> Snapshot:
    """Take a snapshot of process `pid` (the calling process when None).

    `detail=True` reads `/proc/PID/smaps` (every mapping with its Rss, Pss, ...).
    `detail=False` reads `maps` and `smaps_rollup` only: much cheaper, totals but no per-mapping fields.
    A thread ID means its process. A process whose main thread has exited is read through one of
    its live threads; one that starts a new program, or whose main thread exits, while it is read
    is read again. Raises
    `ProcessGone` if the process exits, is a zombie, or its PID is reused while it is read (never a
    partial map), and `AccessDenied` when the kernel will not show its map.
    """

    fs = procfs or default_procfs()
    for _ in range(ATTEMPTS - 1):
        try:
            return _snapshot(pid, detail, fs)
        except ReadAgain:
            continue  # a new program, or a main thread that exited: read what is there now
    return _snapshot(pid, detail, fs)


def _snapshot(pid: Optional[int], detail: bool, fs: ProcFS) -> Snapshot:
    from .mapping import mappings_of  # here, not at the top: the command reads processes without them
    from .snapshot import Snapshot

    target = locate(pid, fs)
    names = target.names(fs)
    rollup = None
    try:
        if not detail and has_rollup(fs, target.tgid, target.thread):
            mappings = mappings_of(maps_runs(fs, target), names)
            rollup = _read_rollup(fs, target)
        else:  # the detail asked for, or a kernel without smaps_rollup (before Linux 4.14, gVisor): sum smaps
            detail = True
            mappings = mappings_of(smaps_runs(fs, target), names)
        # the status read to learn the thread group serves (VmHWM, VmRSS): one read less per snapshot
        status = target.status if target.status is not None and target.thread is None else \
            fs.status(target.tgid, target.thread)
    except ProcessGone:  # smaps_rollup of a memory map let go of is ESRCH: an exit, or a new program
        finish(fs, target, True)
        raise
    after = finish(fs, target, bool(mappings))
    return Snapshot(
        pid=target.tgid,
        mappings=mappings,
        raw_cmdline=target.cmdline,
        comm=target.stat.comm,
        state=after.state,
        start_time=target.stat.start_time,
        start_stack=target.stat.start_stack,
        detail=detail,
        rollup=rollup,
        status=status,
        shm_minor=names.shm_minor,
        ppid=after.ppid,
    )


def _read_rollup(fs: ProcFS, target: Target) -> dict[str, FieldValue]:
    return parse_rollup(fs.read(target.tgid, target.file("smaps_rollup")))


def has_rollup(fs: ProcFS, pid: int, thread: Optional[int] = None) -> bool:
    """False on kernels without smaps_rollup (before Linux 4.14, gVisor): there, every reader of
    totals sums smaps instead, and says so."""
    if fs.root in _ROLLUP_SEEN:  # a kernel that has it keeps it: one look per procfs, not one a read
        return True
    if os.path.exists(fs.path(pid, task_file(thread, "smaps_rollup"))):
        _ROLLUP_SEEN.add(fs.root)
        return True
    return not fs.exists(pid)


_ROLLUP_SEEN: set[str] = set()
"""The procfs roots where smaps_rollup was seen (canned trees in tests each have their own root)."""


_SHM_MINOR: list[Optional[int]] = []


def shm_minor() -> Optional[int]:
    """Minor device number of the kernel's internal shmem mount (where SysV segments live).

    pmap finds it by attaching a SysV segment of its own; a memfd lives on the same mount, and
    creating one maps nothing.
    """
    if not _SHM_MINOR:
        try:
            fd = os.memfd_create("pytest-pmap-probe")
        except (AttributeError, OSError):
            _SHM_MINOR.append(None)
        else:
            try:
                dev = os.fstat(fd).st_dev
                _SHM_MINOR.append(os.minor(dev) if os.major(dev) == 0 else None)
            finally:
                os.close(fd)
    return _SHM_MINOR[0]


def tgid_of(pid: int, fs: ProcFS) -> int:
    """The thread group (process) a PID or thread ID belongs to."""
    tgid = fs.status(pid).get("Tgid", "")
    return int(tgid) if tgid.isdigit() else pid


def map_thread(fs: ProcFS, tgid: int, stat: Stat) -> Optional[int]:
    """The thread to read the map of process `tgid` through: None for the process itself, a live
    thread's ID when its main thread has exited (`stat` shows a zombie while others run on).
    Raises `ProcessGone` when the whole process has exited."""
    if not stat.is_zombie:
        return None
    thread = fs.live_thread(tgid)
    if thread is None:
        raise ProcessGone(f"PID {tgid} has exited (it is a zombie, not yet reaped by its parent): it has no memory map")
    return thread


class PeakReset:
    """Resets the peak RSS (VmHWM) of a process to its RSS now, through `clear_refs`, kept open.

    A process whose main thread has exited is reset through a live thread: the kernel silently
    ignores the main thread's `clear_refs` then.
    """

    def __init__(self, fs: ProcFS, pid: int) -> None:
        self.fs = fs
        self.pid = pid
        self._write: Optional[Callable[[bytes], None]] = None

    def __call__(self) -> str:
        """Reset the peak now; "" when done, else why it could not be (refused, no clear_refs)."""
        fs, pid = self.fs, self.pid
        try:
            thread = None if _main_thread_calls(pid) else map_thread(fs, pid, fs.stat(pid))
            if thread is not None:
                fs.write(pid, task_file(thread, "clear_refs"), b"5")
                return ""
            if self._write is None:
                self._write = fs.writer(pid, "clear_refs")
            self._write(b"5")
        except PmapError as exc:
            return f"peak RSS could not be reset ({exc})"
        return ""


def _main_thread_calls(pid: int) -> bool:
    """True when the caller is process `pid`'s main thread, which is alive then: no need to read
    its stat to find out (the per-test readings of `--pmap` reset the peak before every test)."""
    return pid == os.getpid() and get_native_id() == pid


def check_same_process(watched: Snapshot, now: Snapshot) -> None:
    """Raise `PidReused` when `now` is of another process than `watched` under the same PID: the
    process watched has exited and its PID was given to a new one (their start times differ)."""
    if now.pid == watched.pid and now.start_time != watched.start_time:
        raise PidReused(
            f"PID {now.pid} now names another process: the one watched started at {_since_boot(watched.start_time)}, "
            f"the one there now at {_since_boot(now.start_time)}. The process watched has exited; its PID was reused"
        )


def _since_boot(ticks: int) -> str:
    """A start time (clock ticks since boot) as people read it: `5123.40 s after boot (tick 512340)`."""
    return f"{ticks / os.sysconf('SC_CLK_TCK'):.2f} s after boot (tick {ticks})"


_PID_MAX: dict[str, int] = {}
"""/proc/sys/kernel/pid_max by procfs root, as last read."""


def check_pid(pid: object, fs: ProcFS) -> int:
    """`pid` if it can be a PID on this system; else a `UsageError` (a ValueError) naming it (and pid_max)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise UsageError(f"{pid!r} is not a PID: give a positive integer, or None for this process")
    pid_max = _PID_MAX.get(fs.root, 0)
    if pid >= pid_max:  # read once per procfs, and again only for a PID at or above it (it may have been raised)
        try:
            with open(f"{fs.root}/sys/kernel/pid_max", "rb") as f:
                pid_max = _PID_MAX[fs.root] = int(f.read())
        except (OSError, ValueError):  # a procfs without it (a test tree): the kernel will say
            return pid
    if pid >= pid_max:
        raise UsageError(f"{pid} is not a PID on this system: PIDs are below pid_max ({pid_max})")
    return pid

