"""Writing files so that a reader never sees half of one and an old file is never lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import PmapError

__all__ = ["write_atomic"]


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
        try:
            os.unlink(tmp)
        except OSError:
            pass
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
