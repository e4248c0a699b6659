"""The errors pytest-pmap raises: each names the culprit and the way out."""

from __future__ import annotations


class PmapError(Exception):
    """Base class of every error pytest-pmap raises on purpose."""


class ProcessGone(PmapError):
    """The process exited, turned zombie, or its PID was reused while we looked at it."""


class AccessDenied(PmapError):
    """The kernel refused to show this process's memory map to us."""


class NotSupported(PmapError):
    """This platform or kernel cannot give what was asked for."""


class SmapsParseError(PmapError):
    """A maps or smaps file did not have the shape the kernel writes."""


class SnapshotFileError(PmapError):
    """A saved snapshot file is missing, corrupt, or of a version we cannot read."""


class BudgetSyntaxError(PmapError, ValueError):
    """A size, range or budget was written in a way we cannot read."""
