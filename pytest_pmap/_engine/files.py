"""The files pytest-pmap writes and reads: written so that a reader never sees half of one and an
old one is never lost, read so that every failure is one line naming the file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import PmapError

__all__ = ["dumps", "read_json", "write_atomic", "write_new"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise PmapError(f"cannot write {os.fspath(path)!r}: folder {os.fspath(folder)!r}: {exc.strerror}") from None
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise PmapError(f"cannot write {os.fspath(path)!r}: {exc.strerror}") from None
        raise


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


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; give a new one what the umask allows."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def dumps(data: Any) -> bytes:
    """`data` as the JSON text of our files: indented by one, newline-terminated."""
    import json

    return json.dumps(data, indent=1).encode() + b"\n"


def read_json(path: str | os.PathLike[str], what: str, error: type[PmapError] = PmapError) -> Any:
    """The JSON document in the file at `path`; any failure raises `error` naming it as `what`
    (`baseline file 'base.json'`)."""
    import json

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise error(f"{what} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}") from None
    if not raw.strip():
        raise error(f"{what} is empty")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
