"""All reading of /proc: bytes in, domain errors out.

Nothing here parses a memory map; it only fetches files, maps `OSError` to `ProcessGone` /
`AccessDenied`, and knows who a process is (its start time) so callers can tell a finished read
from one cut short by an exit or a reused PID.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import AccessDenied, NotSupported, ProcessGone

__all__ = ["ProcFS", "Stat", "parse_stat", "default_procfs"]

#: Size of each read() call. The kernel returns at most about a page of smaps per call anyway;
#: staying under glibc's mmap threshold means reading our own smaps adds no mapping to it.
READ_SIZE = 64 * 1024
#: Reads are joined into batches of this size before they are parsed: fewer, larger pieces.
BATCH = 256 * 1024
#: Smaller batches when reading our own map, so the read itself hardly moves our own peak RSS.
SELF_BATCH = 64 * 1024

_GONE = {errno.ENOENT, errno.ESRCH}
_DENIED = {errno.EACCES, errno.EPERM}

PF_KTHREAD = 0x00200000


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
    """A procfs mount, `/proc` unless told otherwise (tests point it at a fake tree)."""

    def __init__(self, root: str | os.PathLike[str] = "/proc") -> None:
        self.root = os.fspath(root)
        self._self_pid = os.getpid() if self.root == "/proc" else None

    def __repr__(self) -> str:
        return f"ProcFS({self.root!r})"

    def path(self, pid: int, name: str) -> str:
        """The path of one file of one process."""
        return f"{self.root}/{pid}/{name}"

    def is_self(self, pid: int) -> bool:
        """True when `pid` is this very process (reading our own map must not change it)."""
        return pid == self._self_pid and pid == os.getpid()

    def _translate(self, exc: OSError, pid: int, name: str) -> Exception:
        path = self.path(pid, name)
        if exc.errno == errno.ENOENT and not os.path.isdir(self.root):
            return NotSupported(
                f"there is no procfs at {self.root}: pytest-pmap reads /proc/PID/smaps, which only Linux has "
                "(set PYTEST_PMAP_PROCFS if procfs is mounted elsewhere)"
            )
        if exc.errno in _GONE:
            return ProcessGone(f"PID {pid} exited or is not visible here ({path}: {os.strerror(exc.errno or 0)})")
        if exc.errno in _DENIED:
            return AccessDenied(
                f"PID {pid}: reading {path} was refused ({os.strerror(exc.errno or 0)}); the kernel shows "
                "another process's memory map only to its own user with ptrace access: run as that user "
                "or as root (CAP_SYS_PTRACE), or relax kernel.yama.ptrace_scope"
            )
        return NotSupported(f"PID {pid}: cannot read {path}: {exc}")

    def read(self, pid: int, name: str) -> bytes:
        """The whole file, read to its end."""
        return b"".join(self.chunks(pid, name))

    def chunks(self, pid: int, name: str) -> Iterator[bytes]:
        """The file's bytes in batches of about `BATCH` bytes.

        The kernel hands smaps out about a page per `read()`; joining the pages into larger
        batches keeps the parser's per-batch work small. A helper thread reading ahead does not
        pay here: it needs the GIL back after every page, and the parser holds it.
        """
        try:
            fd = os.open(self.path(pid, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._translate(exc, pid, name) from exc
        batch = SELF_BATCH if self.is_self(pid) else BATCH
        read = os.read
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                try:
                    data = read(fd, READ_SIZE)
                except OSError as exc:
                    raise self._translate(exc, pid, name) from exc
                if not data:
                    break
                parts.append(data)
                size += len(data)
                if size >= batch:
                    yield b"".join(parts)
                    parts.clear()
                    size = 0
            if parts:
                yield b"".join(parts)
        finally:
            os.close(fd)

    def stat(self, pid: int) -> Stat:
        """`/proc/PID/stat`, parsed."""
        return parse_stat(self.read(pid, "stat"), pid)

    def status(self, pid: int) -> dict[str, str]:
        """`/proc/PID/status` as a dict of its `Key:\\tvalue` lines."""
        out: dict[str, str] = {}
        for line in self.read(pid, "status").decode("utf-8", "surrogateescape").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value.strip()
        return out

    def cmdline(self, pid: int) -> bytes:
        """`/proc/PID/cmdline` raw: NUL-separated arguments, empty for kernel threads and zombies."""
        try:
            return self.read(pid, "cmdline")
        except (AccessDenied, NotSupported):
            return b""

    def write(self, pid: int, name: str, data: bytes) -> None:
        """Write `data` to a file of the process (such as `clear_refs`)."""
        try:
            fd = os.open(self.path(pid, name), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._translate(exc, pid, name) from exc

    def exists(self, pid: int) -> bool:
        """True when the procfs has a directory for `pid` (a process, or a thread's hidden entry)."""
        return os.path.isdir(f"{self.root}/{pid}")


_DEFAULT: ProcFS | None = None


def default_procfs() -> ProcFS:
    """The procfs to use when none is given: `$PYTEST_PMAP_PROCFS`, else `/proc`."""
    global _DEFAULT
    root = os.environ.get("PYTEST_PMAP_PROCFS", "/proc")
    if _DEFAULT is None or _DEFAULT.root != root:
        _DEFAULT = ProcFS(root)
    return _DEFAULT
