"""All reading of /proc: bytes in, domain errors out.

Nothing here parses a memory map; it only fetches files (in this process: reading never starts
another one), maps `OSError` to `ProcessGone` / `AccessDenied` naming the mechanism and the way
out, and reads a process's stat and status through the parsers of `parse.status`.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Callable, Iterator

from ..errors import AccessDenied, NotSupported, ProcessGone, hide_from_tracebacks
from .parse.status import Stat, parse_stat, parse_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["ProcFS", "default_procfs", "task_file"]

#: Size of each read() call. The kernel returns at most about a page of smaps per call anyway;
#: staying under glibc's mmap threshold means reading our own smaps adds no mapping to it.
READ_SIZE = 64 * 1024
#: Reads are joined into batches of this size before they are parsed: fewer, larger pieces.
BATCH = 256 * 1024
#: Smaller batches when reading our own map, so the read itself hardly moves our own peak RSS.
SELF_BATCH = 64 * 1024

_GONE = {errno.ENOENT, errno.ESRCH}
_DENIED = {errno.EACCES, errno.EPERM}

#: hidepid as older kernels show it in mount options, and its name since Linux 5.8.
_HIDEPID = {"0": "off", "1": "noaccess", "2": "invisible", "4": "ptraceable"}
_GID_WAY_OUT = ", or in the group the mount's gid= option names, or remount procfs with hidepid=off"


class ProcFS:
    """A procfs mount, `/proc` unless told otherwise (tests point it at a fake tree).

    `read_ahead` is accepted for code written against earlier releases and does nothing: every
    read happens in this process (see `chunks`).
    """

    def __init__(self, root: str | os.PathLike[str] = "/proc", *, read_ahead: bool = False) -> None:
        self.root = os.fspath(root)
        self._self_pid = os.getpid() if self.root == "/proc" else None
        #: Set by `default_procfs`: its root is a setting, named in errors about it ("" for /proc itself).
        self._setting: Optional[str] = None

    def problem(self) -> str:
        """Why `root` is not a procfs that can be read ("" when it looks like one): nothing there,
        or a folder with neither the `self` entry every procfs has nor a process's folder. Names
        the setting it came from."""
        named = f"{self._setting}={self.root}" if self._setting else self.root
        way_out = (f"set {self._setting} to where procfs is mounted, or unset it to read /proc" if self._setting
                   else "set PYTEST_PMAP_PROCFS to where it is mounted")
        if not os.path.isdir(self.root):
            if self._setting:
                return f"there is no procfs at {self.root} ({named}): {way_out}"
            return f"there is no procfs at {self.root} ({way_out})"
        if not os.path.lexists(os.path.join(self.root, "self")) and not self._has_process_folder():
            return f"{named} is not a procfs: it has neither a 'self' entry nor a folder for any process; {way_out}"
        return ""

    def _has_process_folder(self) -> bool:
        """True when `root` holds a folder named by a number (a canned tree in tests has no `self`)."""
        try:
            with os.scandir(self.root) as entries:
                return any(entry.name.isdigit() and entry.is_dir() for entry in entries)
        except OSError:
            return False

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
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and self._setting is None and not os.path.isdir(self.root):
            return NotSupported(
                f"there is no procfs at {self.root}: pytest-pmap reads /proc/PID/smaps, which only Linux has "
                "(set PYTEST_PMAP_PROCFS if procfs is mounted elsewhere)"
            )
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and self._setting is not None and self.problem():
            # A root that is not a procfs makes every process look gone: blame the setting, not the PID.
            return NotSupported(self.problem())
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
        if exc.errno in _DENIED and os.geteuid() == 0:
            return AccessDenied(
                f"PID {pid}: {reading} {path} was refused ({os.strerror(exc.errno or 0)}) though we run as root: root "
                "here lacks CAP_SYS_PTRACE over that process (a user namespace or a container drops it), or a security "
                "module (Yama's ptrace_scope=3, SELinux, AppArmor, lockdown) forbids it; run where those allow it"
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
                return int(parse_status(f.read())["Uid"].split()[0])
        except (OSError, ValueError, IndexError, KeyError):
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
        """The whole file, read to its end (small files in one read and the one that says it has ended)."""
        fd = self._open(pid, name, os.O_RDONLY)
        parts: list[bytes] = []
        try:
            while True:
                data = os.read(fd, READ_SIZE)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        except OSError as exc:
            raise self._translate(exc, pid, name) from None
        finally:
            os.close(fd)

    def chunks(self, pid: int, name: str) -> Iterator[bytes]:
        """The file's bytes in batches of about `BATCH` bytes, read to its end in this process.

        The kernel writes smaps about a page per `read()`; joining the pages into batches lets the
        parser work on large pieces. Our own map is read in smaller batches, so that reading it
        hardly moves our own peak RSS. (Reading ahead in another process or thread was measured:
        a thread needs the GIL back after every page, and a helper process is a process we started;
        neither paid, see docs/engine.md.)
        """
        fd = self._open(pid, name, os.O_RDONLY)

        def read() -> bytes:
            try:
                return os.read(fd, READ_SIZE)
            except OSError as exc:
                raise self._translate(exc, pid, name) from None

        try:
            yield from _batches(read, SELF_BATCH if self.is_self(pid) else BATCH)
        finally:
            os.close(fd)

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

    def pread(self, pid: int, name: str) -> Callable[[int, int], bytes]:
        """A function that reads `size` bytes at `offset` of a file read by position (pagemap), through
        one file descriptor kept open while the function lives; a short read means the process exited."""
        fd = self._open(pid, name, os.O_RDONLY)

        def read(offset: int, size: int) -> bytes:
            try:
                data = os.pread(fd, size, offset)
            except OSError as exc:
                raise self._translate(exc, pid, name) from None
            if len(data) < size:  # the kernel reads nothing once the process's memory is gone
                raise ProcessGone(f"PID {pid} exited while {self.path(pid, name)} was read")
            return data

        weakref.finalize(read, os.close, fd)
        return read

    def stat(self, pid: int, task: Optional[int] = None) -> Stat:
        """`/proc/PID/stat` (of thread `task` when given: `/proc/PID/task/TASK/stat`), parsed."""
        return parse_stat(self.read(pid, task_file(task, "stat")), pid if task is None else task)

    def status(self, pid: int, task: Optional[int] = None) -> dict[str, str]:
        """`/proc/PID/status` (or thread `task`'s) as a dict of its `Key:\tvalue` lines."""
        return parse_status(self.read(pid, task_file(task, "status")))

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

    def children(self, pid: int) -> list[int]:
        """The PIDs of the children of process `pid` (those of every thread of it; zombies
        included), read from `task/TID/children`; [] once it has exited. On a kernel without
        those files (CONFIG_PROC_CHILDREN unset), every process's stat is read for its parent."""
        try:
            tids = [name for name in os.listdir(self.path(pid, "task")) if name.isdigit()]
        except OSError:
            return []
        found: list[int] = []
        for tid in tids:
            try:
                with open(self.path(pid, f"task/{tid}/children"), "rb") as f:
                    found += [int(child) for child in f.read().split()]
            except FileNotFoundError:
                if os.path.isdir(self.path(pid, f"task/{tid}")):
                    return self._children_from_stat(pid)
            except OSError:  # the thread has exited meanwhile
                continue
        return found

    def _children_from_stat(self, pid: int) -> list[int]:
        found = []
        for name in os.listdir(self.root):
            try:
                with open(self.path(int(name), "stat"), "rb") as f:
                    data = f.read()
            except (OSError, ValueError):
                continue
            fields = data[data.rfind(b")") + 2 :].split()
            if len(fields) > 1 and fields[1] == str(pid).encode():
                found.append(int(name))
        return found

    def exists(self, pid: int) -> bool:
        """True when the procfs has a directory for `pid` (a process, or a thread's hidden entry)."""
        return os.path.isdir(f"{self.root}/{pid}")


def task_file(task: Optional[int], name: str) -> str:
    """The name of a process's file as seen through one of its threads (`task/TID/name`)."""
    return name if task is None else f"task/{task}/{name}"


def _batches(read: Callable[[], bytes], batch: int) -> Iterator[bytes]:
    """Join what `read()` returns into batches of about `batch` bytes, to its end."""
    parts: list[bytes] = []
    size = 0
    while True:
        data = read()
        if not data:
            if parts:
                yield b"".join(parts)
            return
        parts.append(data)
        size += len(data)
        if size >= batch:
            yield b"".join(parts)
            parts.clear()
            size = 0


_DEFAULT: ProcFS | None = None


def default_procfs() -> ProcFS:
    """The procfs to use when none is given: `$PYTEST_PMAP_PROCFS`, else `/proc`."""
    global _DEFAULT
    setting = os.environ.get("PYTEST_PMAP_PROCFS")
    root = setting or "/proc"
    if _DEFAULT is None or _DEFAULT.root != root:
        _DEFAULT = ProcFS(root)
        _DEFAULT._setting = "PYTEST_PMAP_PROCFS" if setting else ""
    return _DEFAULT
