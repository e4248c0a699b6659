"""The errors pytest-pmap raises: each names the culprit and the way out."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any



class PmapError(Exception):
    """Base class of every error pytest-pmap raises on purpose."""


class ProcessGone(PmapError):
    """The process exited, turned zombie, or its PID was reused while we looked at it."""


class PidReused(ProcessGone):
    """The process watched has exited and its PID now names another process (start times differ)."""


class AccessDenied(PmapError):
    """The kernel refused to show this process's memory map to us."""


class NotSupported(PmapError):
    """This platform or kernel cannot give what was asked for."""


class SmapsParseError(PmapError):
    """A maps or smaps file did not have the shape the kernel writes."""


class SnapshotFileError(PmapError):
    """A saved snapshot file is missing, corrupt, or of a version we cannot read."""


class UsageError(PmapError, ValueError):
    """A value given to pytest-pmap (a PID, a program to start, a setting) that it cannot use."""


class BudgetSyntaxError(UsageError):
    """A size, range or budget was written in a way we cannot read."""


def hide_from_tracebacks(excinfo: Any) -> bool:
    """pytest's `__tracebackhide__`, set in each module a test's call can pass through: a
    `PmapError` shows as the test's own line and the message, which names the culprit and the way
    out; any other exception keeps every frame (and `--fulltrace` shows them all)."""
    return isinstance(getattr(excinfo, "value", None), PmapError)
