"""Everything the command prints goes through here, so that output that cannot be written is one
line and pmap's exit status (`pmap: write error: No space left on device`, status 1), as procps
pmap says it, never a traceback, and a closed stdout (`>&-`) is an error rather than silence."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union

__all__ = ["WriteError", "complain", "out"]


class WriteError(Exception):
    """Standard output could not be written."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.errno = code

    @property
    def quiet(self) -> bool:
        """True when the reader went away (EPIPE): pmap says nothing then."""
        return self.errno == errno.EPIPE


def out(data: Union[str, bytes]) -> None:
    """Write `data` to standard output at once (text as the file system encodes names, so that
    any file name prints); raises `WriteError` when it cannot be written."""
    if not data:
        return
    raw = os.fsencode(data) if isinstance(data, str) else data
    stream = sys.stdout
    if stream is None:  # Python's stand-in for a closed file descriptor 1
        raise WriteError(errno.EBADF)
    try:
        stream.flush()
        stream.buffer.write(raw)
        stream.buffer.flush()
    except OSError as exc:
        raise WriteError(exc.errno or errno.EIO) from None


def complain(text: str) -> None:
    """Write `text` to standard error, as the file system encodes names (an argument's bytes come
    back as they were given, whatever PYTHONIOENCODING says); when even that fails, there is no
    one left to tell."""
    with contextlib.suppress(Exception):
        stream = sys.stderr
        if stream is None:
            return
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text stream alone (`contextlib.redirect_stderr(io.StringIO())`)
            stream.write(text)
            stream.flush()
            return
        stream.flush()
        buffer.write(os.fsencode(text))
        buffer.flush()
