"""pytest-pmap: memory budgets for CI from the kernel's own memory map, printed the way pmap prints it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    AccessDenied,
    BudgetSyntaxError,
    NotSupported,
    PmapError,
    ProcessGone,
    SmapsParseError,
    SnapshotFileError,
)
from .model import METRICS, Mapping, Snapshot, Totals, snapshot
from .size import GiB, KiB, MiB, Size, TiB, parse_size

try:
    __version__ = version("pytest-pmap")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AccessDenied",
    "BudgetSyntaxError",
    "GiB",
    "KiB",
    "METRICS",
    "Mapping",
    "MiB",
    "NotSupported",
    "PmapError",
    "ProcessGone",
    "Size",
    "SmapsParseError",
    "Snapshot",
    "SnapshotFileError",
    "TiB",
    "Totals",
    "__version__",
    "parse_size",
    "snapshot",
]
