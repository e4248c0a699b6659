"""The errors pytest-pmap raises, each naming the culprit and the way out, and the warning it issues."""

from __future__ import annotations

import os
import sys
import warnings

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


class PmapWarning(UserWarning):
    """What a passing test or a library call would otherwise hide: a memory budget the kernel gives
    no numbers for, a process `pmap_spawn` started that crashed or had to be killed, a diff of two
    different processes. Make it an error with `-W error::pytest_pmap.PmapWarning`.

    Defined here, beside the errors, so that every layer can issue it, the engine (which never
    imports pytest) included; `pytest_pmap.PmapWarning` and `pytest_pmap.warnings.PmapWarning` are
    this very class, so one filter catches them all."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str) -> None:
    """Issue a `PmapWarning` attributed to the first line outside pytest-pmap that led here (the
    user's `b.diff(a)`, not our own frames)."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(PmapWarning(message), stacklevel=level)


def hide_from_tracebacks(excinfo: Any) -> bool:
    """pytest's `__tracebackhide__`, set in each module a test's call can pass through: a
    `PmapError` shows as the test's own line and the message, which names the culprit and the way
    out; any other exception keeps every frame (and `--fulltrace` shows them all)."""
    return isinstance(getattr(excinfo, "value", None), PmapError)
