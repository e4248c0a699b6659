"""All reading of /proc: bytes in, domain errors out.

Nothing here parses a memory map; it only fetches files, maps `OSError` to `ProcessGone` /
`AccessDenied`, and knows who a process is (its start time) so callers can tell a finished read
from one cut short by an exit or a reused PID.
"""

from __future__ import annotations

import errno
import os
import signal
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Optional

from .errors import AccessDenied, NotSupported, ProcessGone, hide_from_tracebacks

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["ProcFS", "Stat", "default_procfs", "parse_stat", "task_file"]

#: Size of each read() call. The kernel returns at most about a page of smaps per call anyway;
#: staying under glibc's mmap threshold means reading our own smaps adds no mapping to it.
READ_SIZE = 64 * 1024
#: Reads are joined into batches of this size before they are parsed: fewer, larger pieces.
BATCH = 256 * 1024
#: Smaller batches when reading our own map, so the read itself hardly moves our own peak RSS.
SELF_BATCH = 64 * 1024
#: A file still going after this many bytes is read on by a helper process (see `ProcFS.chunks`).
READ_AHEAD_AFTER = BATCH
#: The helper: it copies the smaps file we opened to a pipe, a batch at a time, while we parse
#: what it has sent (`iflag=fullblock` joins the kernel's page-sized reads into whole batches).
READ_AHEAD_HELPER = "/bin/dd"
_HELPER_ARGS = ["dd", f"bs={BATCH}", "iflag=fullblock", "status=none"]
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031

_GONE = {errno.ENOENT, errno.ESRCH}
_DENIED = {errno.EACCES, errno.EPERM}

PF_KTHREAD = 0x00200000

#: hidepid as older kernels show it in mount options, and its name since Linux 5.8.
_HIDEPID = {"0": "off", "1": "noaccess", "2": "invisible", "4": "ptraceable"}
_GID_WAY_OUT = ", or in the group the mount's gid= option names, or remount procfs with hidepid=off"


@dataclass(frozen=True)
class Stat:
    """The fields of `/proc/PID/stat` that pytest-pmap uses."""

    pid: int
    """The PID (or thread ID) the file belongs to."""
    comm: bytes
    """The command name: everything between the first `(` and the last `)`."""
    state: str
    """One letter: R, S, D, T, Z (zombie), X (dead), ..."""
    flags: int
    """The kernel's `PF_*` flags (field 9)."""
    start_time: int
    """Start time in clock ticks since boot (field 22): a PID plus this names one process for good."""
    start_stack: int
    """Address of the bottom of the main stack (field 28); pmap marks the mapping holding it `[ stack ]`."""

    @property
    def is_zombie(self) -> bool:
        """True when the process has exited and waits to be reaped (or is being torn down)."""
        return self.state in ("Z", "X", "x")

    @property
    def is_kernel_thread(self) -> bool:
        """True for kernel threads, which have no user memory map at all."""
        return bool(self.flags & PF_KTHREAD)


def parse_stat(data: bytes, pid: int) -> Stat:
    """Parse `/proc/PID/stat`; the command name may hold spaces and parentheses, so split at the last `)`."""
    open_paren = data.find(b"(")
    close_paren = data.rfind(b")")
    fields = data[close_paren + 2 :].split()
    if open_paren < 0 or close_paren < open_paren or len(fields) < 26:
        raise ProcessGone(f"PID {pid}: /proc/{pid}/stat is empty or cut short; the process is exiting")
    return Stat(
        pid=pid,
        comm=data[open_paren + 1 : close_paren],
        state=fields[0].decode("ascii", "replace"),
        flags=int(fields[6]),
        start_time=int(fields[19]),
        start_stack=int(fields[25]),
    )


class ProcFS:
    """A procfs mount, `/proc` unless told otherwise (tests point it at a fake tree).

    `read_ahead=False` keeps every read in this process (see `chunks`); `read_ahead` is then
    False, as it is when the helper program is missing.
    """

    def __init__(self, root: str | os.PathLike[str] = "/proc", *, read_ahead: bool = True) -> None:
        self.root = os.fspath(root)
        self.read_ahead_wanted = read_ahead
        self.read_ahead = read_ahead and os.access(READ_AHEAD_HELPER, os.X_OK)
        self._self_pid = os.getpid() if self.root == "/proc" else None

    def __repr__(self) -> str:
        return f"ProcFS({self.root!r})"

    def path(self, pid: int, name: str) -> str:
        """The path of one file of one process."""
        return f"{self.root}/{pid}/{name}"

    def is_self(self, pid: int) -> bool:
        """True when `pid` is this very process (reading our own map must not change it)."""
        return pid == self._self_pid and pid == os.getpid()

    def _translate(self, exc: OSError, pid: int, name: str, write: bool = False) -> Exception:
        """The domain error for an `OSError` from reading (or, with `write`, writing) a file of `pid`."""
        path = self.path(pid, name)
        reading = "writing" if write else "reading"
        if exc.errno == errno.ENOENT and not os.path.isdir(self.root):
            return NotSupported(
                f"there is no procfs at {self.root}: pytest-pmap reads /proc/PID/smaps, which only Linux has "
                "(set PYTEST_PMAP_PROCFS if procfs is mounted elsewhere)"
            )
        hidepid = self.mount_options().get("hidepid", "off") if exc.errno in _GONE | _DENIED else "off"
        if exc.errno in _GONE and hidepid in ("invisible", "ptraceable"):
            hidden = "of other users" if hidepid == "invisible" else "we may not ptrace"
            return ProcessGone(
                f"PID {pid} is not visible here or has exited ({path}: {os.strerror(exc.errno or 0)}): procfs at "
                f"{self.root} is mounted with hidepid={hidepid}, which hides the processes {hidden}; run as the "
                f"process's user or as root{_GID_WAY_OUT}"
            )
        if exc.errno in _GONE:
            return ProcessGone(f"PID {pid} exited or is not visible here ({path}: {os.strerror(exc.errno or 0)})")
        if exc.errno in _DENIED and hidepid == "noaccess":
            return AccessDenied(
                f"PID {pid}: {reading} {path} was refused ({os.strerror(exc.errno or 0)}): procfs at {self.root} is "
                f"mounted with hidepid=noaccess, which lets no one else read another user's processes; run as the "
                f"process's user or as root{_GID_WAY_OUT}"
            )
        if exc.errno in _DENIED and self._owner(pid) == os.getuid() != 0:
            return AccessDenied(
                f"PID {pid}: {reading} {path} was refused ({os.strerror(exc.errno or 0)}): the process runs as your "
                "user but is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), changed its user ID or runs a "
                "set-user-ID program), or kernel.yama.ptrace_scope forbids reading it; the kernel then shows its "
                "memory map only to root (CAP_SYS_PTRACE): run as root, or keep the process dumpable"
            )
        if exc.errno in _DENIED:
            return AccessDenied(
                f"PID {pid}: {reading} {path} was refused ({os.strerror(exc.errno or 0)}); the kernel shows "
                "another process's memory map only to its own user with ptrace access: run as that user "
                "or as root (CAP_SYS_PTRACE), or relax kernel.yama.ptrace_scope"
            )
        return NotSupported(f"PID {pid}: {reading} {path} failed: {exc.strerror}")

    def _owner(self, pid: int) -> Optional[int]:
        """The real user ID process `pid` runs as (from its status, which anyone may read); None if unknown."""
        try:
            with open(self.path(pid, "status"), "rb") as f:
                for line in f.read().splitlines():
                    if line.startswith(b"Uid:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def mount_options(self) -> dict[str, str]:
        """The options of the procfs mounted at `root` (`hidepid`, `gid`, ...), from this process's
        `/proc/self/mountinfo`; `hidepid` spelled as names (`1` is `noaccess`). {} when not found."""
        import re

        try:
            with open("/proc/self/mountinfo", "rb") as f:
                lines = f.read().decode("utf-8", "surrogateescape").splitlines()
        except OSError:
            return {}
        target = os.path.realpath(self.root)
        options: dict[str, str] = {}
        for line in lines:  # the last mount on a path is the one seen there
            fields = line.split(" ")
            if "-" not in fields[6:] or len(fields) < 10:
                continue
            dash = fields.index("-", 6)
            mount_point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            if mount_point == target and fields[dash + 1] == "proc" and len(fields) > dash + 3:
                options = dict(option.partition("=")[::2] for option in fields[dash + 3].split(","))
        if "hidepid" in options:
            options["hidepid"] = _HIDEPID.get(options["hidepid"], options["hidepid"])
        return options

    def _open(self, pid: int, name: str, flags: int) -> int:
        try:
            return os.open(self.path(pid, name), flags | os.O_CLOEXEC)
        except OSError as exc:
            raise self._translate(exc, pid, name, write=flags & os.O_WRONLY != 0) from None

    def read(self, pid: int, name: str) -> bytes:
        """The whole file, read to its end."""
        return b"".join(self.chunks(pid, name))

    def chunks(self, pid: int, name: str) -> Iterator[bytes]:
        """The file's bytes in batches of about `BATCH` bytes.

        The kernel writes smaps about a page per `read()`, and writing it is most of the cost of
        reading it. A file still going after `READ_AHEAD_AFTER` bytes is handed to a helper
        process (`dd`, reading the very file we opened, from where we stopped), so the kernel
        writes the rest on another CPU while this process parses; a helper thread would not do,
        as it needs the GIL back after every page. Our own map is always read in-process, in
        small batches, so that reading it hardly moves our own peak RSS.
        """
        fd = self._open(pid, name, os.O_RDONLY)

        def read() -> bytes:
            try:
                return os.read(fd, READ_SIZE)
            except OSError as exc:
                raise self._translate(exc, pid, name) from None

        try:
            if self.is_self(pid) or not self.read_ahead:
                yield from _batches(read, SELF_BATCH if self.is_self(pid) else BATCH)
                return
            if (yield from _batches(read, BATCH, stop_after=READ_AHEAD_AFTER)):
                return  # the whole file came in the first batch
            helper = _spawn_reader(fd)
            yield from (_batches(read, BATCH) if helper is None else self._helper_chunks(helper, pid, name))
        finally:
            os.close(fd)

    def _helper_chunks(self, helper: tuple[int, int], pid: int, name: str) -> Iterator[bytes]:
        """Batches from a helper's pipe; its failure is ours. The helper never outlives the read."""
        child, pipe = helper
        try:
            yield from _batches(lambda: os.read(pipe, _PIPE_SIZE), BATCH)
            _, status = os.waitpid(child, 0)
            child = 0
            if status != 0:
                if not self.exists(pid):
                    raise ProcessGone(f"PID {pid} exited while {self.path(pid, name)} was read")
                raise NotSupported(f"PID {pid}: reading {self.path(pid, name)} failed part way (wait status {status})")
        finally:
            os.close(pipe)
            if child:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)

    def writer(self, pid: int, name: str) -> Callable[[bytes], None]:
        """A function that writes to a file (clear_refs) through one file descriptor kept open."""
        fd = self._open(pid, name, os.O_WRONLY)

        def write(data: bytes) -> None:
            try:
                os.write(fd, data)
            except OSError as exc:
                raise self._translate(exc, pid, name, write=True) from None

        weakref.finalize(write, os.close, fd)
        return write

    def reader(self, pid: int, name: str) -> Callable[[], bytes]:
        """A function that reads a small file (status, smaps_rollup) afresh on every call, through
        one file descriptor kept open: procfs writes the text anew for each read from offset 0."""
        fd = self._open(pid, name, os.O_RDONLY)

        def read() -> bytes:
            try:
                data = os.pread(fd, READ_SIZE, 0)
                return data if len(data) < READ_SIZE else self.read(pid, name)
            except OSError as exc:
                raise self._translate(exc, pid, name) from None

        weakref.finalize(read, os.close, fd)
        return read

    def stat(self, pid: int, task: Optional[int] = None) -> Stat:
        """`/proc/PID/stat` (of thread `task` when given: `/proc/PID/task/TASK/stat`), parsed."""
        return parse_stat(self.read(pid, task_file(task, "stat")), pid if task is None else task)

    def status(self, pid: int, task: Optional[int] = None) -> dict[str, str]:
        """`/proc/PID/status` (or thread `task`'s) as a dict of its `Key:\\tvalue` lines."""
        out: dict[str, str] = {}
        for line in self.read(pid, task_file(task, "status")).decode("utf-8", "surrogateescape").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value.strip()
        return out

    def cmdline(self, pid: int, task: Optional[int] = None) -> bytes:
        """`/proc/PID/cmdline` (or thread `task`'s) raw: NUL-separated arguments, empty for kernel
        threads and zombies."""
        try:
            return self.read(pid, task_file(task, "cmdline"))
        except (AccessDenied, NotSupported):
            return b""

    def write(self, pid: int, name: str, data: bytes) -> None:
        """Write `data` to a file of the process (such as `clear_refs`)."""
        fd = self._open(pid, name, os.O_WRONLY)
        try:
            os.write(fd, data)
        except OSError as exc:
            raise self._translate(exc, pid, name, write=True) from None
        finally:
            os.close(fd)

    def live_thread(self, pid: int) -> Optional[int]:
        """A thread of process `pid` that has not exited, other than its main thread; None if none.

        When the main thread has exited while others run on, the kernel shows the process as a
        zombie with an empty map under `/proc/PID/`; the live threads under `task/` still show it.
        """
        try:
            tids = sorted(int(name) for name in os.listdir(self.path(pid, "task")) if name.isdigit())
        except OSError:
            return None
        for tid in tids:
            if tid == pid:
                continue
            try:
                if not self.stat(pid, tid).is_zombie:
                    return tid
            except (ProcessGone, AccessDenied, NotSupported):
                continue
        return None

    def exists(self, pid: int) -> bool:
        """True when the procfs has a directory for `pid` (a process, or a thread's hidden entry)."""
        return os.path.isdir(f"{self.root}/{pid}")


def task_file(task: Optional[int], name: str) -> str:
    """The name of a process's file as seen through one of its threads (`task/TID/name`)."""
    return name if task is None else f"task/{task}/{name}"


def _batches(read: Callable[[], bytes], batch: int, stop_after: int = -1) -> Generator[bytes, None, bool]:
    """Join what `read()` returns into batches of about `batch` bytes, to its end (returning
    True), or until `stop_after` bytes have been passed on (returning False)."""
    parts: list[bytes] = []
    size = total = 0
    while True:
        data = read()
        if not data:
            if parts:
                yield b"".join(parts)
            return True
        parts.append(data)
        size += len(data)
        if size >= batch:
            yield b"".join(parts)
            parts.clear()
            total += size
            size = 0
            if 0 <= stop_after <= total:
                return False


def _spawn_reader(fd: int) -> tuple[int, int] | None:
    """Start `dd` copying `fd` (from its current offset) into a pipe: (its PID, the pipe's read
    end); None when it cannot be started, and the caller reads on by itself."""
    import fcntl

    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass  # a smaller pipe only means more, shorter reads
    try:
        child = os.posix_spawn(
            READ_AHEAD_HELPER,
            _HELPER_ARGS,
            {},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, fd, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
        )
    except OSError:
        os.close(read_end)
        return None
    finally:
        os.close(write_end)
    return child, read_end


_DEFAULT: ProcFS | None = None


def default_procfs() -> ProcFS:
    """The procfs to use when none is given: `$PYTEST_PMAP_PROCFS`, else `/proc`; reading ahead
    with a helper process unless `$PYTEST_PMAP_READ_AHEAD` is `0`."""
    global _DEFAULT
    root = os.environ.get("PYTEST_PMAP_PROCFS", "/proc")
    read_ahead = os.environ.get("PYTEST_PMAP_READ_AHEAD", "1") != "0"
    if _DEFAULT is None or _DEFAULT.root != root or _DEFAULT.read_ahead_wanted != read_ahead:
        _DEFAULT = ProcFS(root, read_ahead=read_ahead)
    return _DEFAULT
