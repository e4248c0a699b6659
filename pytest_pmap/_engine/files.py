"""The files pytest-pmap writes: so that a reader never sees half of one and an old one is never
lost (they are read by `jsonfiles`).

Where a path leads decides how it is written (`destination`): a regular file, or a new one, is
replaced atomically (a temporary file beside it, then a rename); a symbolic link is followed, its
target replaced and the link kept; a device, a FIFO or a socket (`/dev/null`, `/dev/full`, a named
pipe) is written through, as `cat > PATH` would; and one of our own open descriptors
(`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`) is written at its current offset, as a shell's
`>` or `>>` left it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Optional

from ..errors import PmapError

__all__ = ["Destination", "append", "append_record", "check_writable", "destination", "dumps", "write_atomic", "write_new"]

#: Symbolic links followed from one path before it is called a loop (the kernel's own limit).
_MAX_LINKS = 40
#: The folder of a process's open file descriptors, as `realpath` shows `/dev/fd` and `/proc/self/fd`.
_DESCRIPTOR_FOLDER = r"/proc/(\d+)(?:/task/\d+)?/fd"
#: Signals that end a process without running its cleanup, unless it handles them; while a
#: temporary file exists they raise, so the file is removed, and are then delivered again.
_FATAL_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Destination:
    """Where writing to a path lands, and how it is written."""

    path: str
    """The file written: the path itself, or the file its symbolic links lead to."""
    kind: str
    """`new` or `file` (replaced atomically), `stream` (a device, FIFO or socket: written
    through) or `descriptor` (our own open file descriptor `fd`)."""
    fd: int = -1
    """For `descriptor`: the file descriptor of this process the path names."""


def destination(path: str | os.PathLike[str]) -> Destination:
    """Where writing to `path` lands; a folder, a link loop or an empty name raise `PmapError`."""
    name = os.fspath(path)
    if not name:
        raise PmapError("'' is not a file name: give the path of the file to write")
    current = name
    for _ in range(_MAX_LINKS):
        folder = os.path.dirname(current) or "."
        descriptors = re.fullmatch(_DESCRIPTOR_FOLDER, os.path.realpath(folder))
        if descriptors:  # /proc/PID/fd/N names an open file, not a path: never follow it as text
            base = os.path.basename(current)
            if int(descriptors.group(1)) == os.getpid() and base.isdigit():
                return Destination(current, "descriptor", int(base))
            return Destination(current, "stream")  # another process's: opened, as `cat > PATH` would
        try:
            target = os.readlink(current)
        except OSError:  # not a link (EINVAL), or not there: `current` is the file itself
            break
        current = os.path.join(folder, target)  # an absolute target replaces the folder
    else:
        raise PmapError(f"cannot write {name!r}: its symbolic links loop (more than {_MAX_LINKS} of them)")
    try:
        mode = os.stat(current).st_mode
    except FileNotFoundError:
        return Destination(current, "new")
    except OSError as exc:
        raise PmapError(f"cannot write {name!r}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise PmapError(f"cannot write {name!r}: it is a folder; give a file name")
    return Destination(current, "file" if stat.S_ISREG(mode) else "stream")


def write_new(path: str | os.PathLike[str], data: bytes) -> None:
    """Create the file `path` holding `data`, with the permissions the umask allows. A file that
    exists is never replaced, and one that could not be written whole is removed: the error names
    the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise PmapError(f"cannot create {os.fspath(path)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(exc, OSError):
            raise PmapError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from None
        raise


def check_writable(path: str | os.PathLike[str]) -> Destination:
    """Where `path` leads, after checking that `write_atomic` could write it now; raises
    `PmapError` saying why not (the folder of the file it would replace, or the device itself)."""
    name = os.fspath(path)
    where = destination(path)
    if where.kind == "descriptor":
        try:
            writable = fcntl.fcntl(where.fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
        except OSError:
            writable = False
        if not writable:
            raise PmapError(f"cannot write {name!r}: file descriptor {where.fd} is not open for writing")
    elif where.kind == "stream":
        if not os.access(where.path, os.W_OK):
            raise PmapError(f"cannot write {name!r}: permission denied")
    else:
        folder = os.path.dirname(where.path) or "."
        if not os.path.isdir(folder):
            raise PmapError(f"cannot write {name!r}: folder {folder!r} does not exist; create it first")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PmapError(f"cannot write {name!r}: folder {folder!r} is not writable")
        _check_may_replace(where, name)
    return where


def _check_may_replace(where: Destination, name: str) -> None:
    """Refuse to replace a file we may not write, as the shell's `>` would: replacing it through a
    new file and a rename needs only the folder's permission, and would get past its own. (A
    folder that takes no new file is the error `_replace` gives.)"""
    folder = os.path.dirname(where.path) or "."
    if where.kind == "file" and not os.access(where.path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK):
        raise PmapError(f"cannot write {name!r}: permission denied (the file is not writable to you); "
                        "write another file, or change its permissions")


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so that it is never half-written and no temporary file is left:
    a regular or new file (also at the end of symbolic links) through a temporary file beside
    it and a rename; a device, FIFO or our own descriptor (`/dev/stdout`) written through."""
    where = destination(path)
    name = os.fspath(path)
    if where.kind == "descriptor":
        _write_descriptor(where.fd, data, name)
    elif where.kind == "stream":
        try:
            # O_TRUNC is for another process's descriptor of a regular file; Linux ignores it
            # for devices, FIFOs and sockets.
            fd = os.open(where.path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as exc:
            raise PmapError(f"cannot write {name!r}: {exc.strerror}") from None
        try:
            _write_all(fd, data, f"{name!r}")
        finally:
            os.close(fd)
    else:
        _check_may_replace(where, name)
        _replace(Path(where.path), data, name)


def append(path: str | os.PathLike[str], data: bytes) -> None:
    """Add `data` at the end of the file at `path` (a log that several writers add to)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise PmapError(f"cannot append to {os.fspath(path)!r}: {exc.strerror}") from None
    try:
        _write_all(fd, data, f"{os.fspath(path)!r}", verb="append to")
    finally:
        os.close(fd)


def append_record(path: str | os.PathLike[str], data: bytes) -> None:
    """Add `data` at the end of the file at `path` in one `write()` on an `O_APPEND` descriptor,
    so that records of writers appending at the same moment never interleave (the kernel appends
    each such write whole to a regular file); a short write (a full disk) is an error saying so."""
    name = f"{os.fspath(path)!r}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise PmapError(f"cannot append to {name}: {exc.strerror}") from None
    try:
        written = os.write(fd, data)
    except OSError as exc:
        raise PmapError(f"cannot append to {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if written != len(data):
        raise PmapError(f"cannot append to {name}: only {written} of {len(data)} bytes were written (is the disk full?); "
                        "the last line of the file is incomplete and will be skipped when it is read")


def _replace(target: Path, data: bytes, name: str) -> None:
    """The atomic write: a temporary file in `target`'s folder, then a rename over `target`."""
    folder = target.parent if str(target.parent) else Path(".")
    tmp: Optional[str] = None
    with _signals_raise():
        try:
            # No signal between the file's creation and our knowing its name.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _FATAL_SIGNALS)
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            except OSError as exc:
                # The file is replaced through a new one beside it: say that it is the folder that refuses
                # (/proc has files, and answers ENOENT to a new one).
                if not os.path.isdir(folder):
                    raise PmapError(f"cannot write {name!r}: folder {os.fspath(folder)!r} does not exist; "
                                    "create it first") from None
                raise PmapError(f"cannot write {name!r}: no new file can be created in its folder {os.fspath(folder)!r} "
                                f"({exc.strerror}); write it to another folder") from None
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            with os.fdopen(fd, "wb") as out:
                _keep_owner_and_mode(out.fileno(), target)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(exc, OSError) and exc.errno == errno.EPERM and _sticky(folder):
                raise PmapError(f"cannot write {name!r}: its folder {os.fspath(folder)!r} is sticky (as /tmp is) and "
                                "the file is another user's, so it cannot be replaced through a new file; write "
                                "another file, or have its owner remove it") from None
            if isinstance(exc, OSError):
                raise PmapError(f"cannot write {name!r}: {exc.strerror}") from None
            raise


def _sticky(folder: Path) -> bool:
    """True for a folder whose files only their owners may rename or remove (`chmod +t`)."""
    try:
        return bool(os.stat(folder).st_mode & stat.S_ISVTX)
    except OSError:
        return False


def _write_descriptor(fd: int, data: bytes, name: str) -> None:
    """Write at the descriptor's own offset, after what Python has buffered for it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None and stream.fileno() == fd:
                stream.flush()
    _write_all(fd, data, f"{name!r}")


def _write_all(fd: int, data: bytes, name: str, verb: str = "write") -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise PmapError(f"cannot {verb} {name}: {exc.strerror}") from None


class _Signalled(BaseException):
    """A fatal signal arrived while a temporary file existed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: Optional[FrameType]) -> None:
    raise _Signalled(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Within: SIGTERM, SIGINT and SIGHUP, where nothing handles them and they would end the
    process at once, raise `_Signalled` so that the cleanup runs; after it, the process ends by
    the same signal, as it would have. (Only the main thread may set handlers; elsewhere, and
    for signals the program handles itself, nothing changes.)"""
    saved: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _FATAL_SIGNALS:
            if signal.getsignal(sig) == signal.SIG_DFL:
                saved[sig] = signal.signal(sig, _raise_signalled)
    try:
        yield
    except _Signalled as exc:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        saved.clear()
        signal.raise_signal(exc.signum)
        raise SystemExit(128 + exc.signum) from None  # the signal is blocked: end as the shell would show it
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _keep_owner_and_mode(fd: int, path: Path) -> None:
    """Give the new file the old one's permissions and, where we may (as root), its owner and
    group: a report that root rewrites in a user's checkout stays the user's. A new file gets
    what the umask allows."""
    try:
        old = os.stat(path)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(OSError):  # EPERM unless we are root: the file becomes ours, as any rewrite makes it
            os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, old.st_mode & 0o7777)  # after fchown, which clears set-user-ID bits


def dumps(data: Any) -> bytes:
    """`data` as the JSON text of our files: indented by one, newline-terminated."""
    import json

    return json.dumps(data, indent=1).encode() + b"\n"
