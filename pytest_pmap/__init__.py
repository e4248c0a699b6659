"""pytest-pmap: memory budgets for CI from the kernel's own memory map, printed the way pmap prints it."""

from __future__ import annotations

from .errors import (
    AccessDenied,
    BudgetSyntaxError,
    NotSupported,
    PmapError,
    ProcessGone,
    SmapsParseError,
    SnapshotFileError,
)
from ._procfs import ProcFS
from .model import METRICS, Mapping, Snapshot, Totals, snapshot
from .size import GiB, KiB, MiB, Size, TiB, parse_size


def __getattr__(name: str) -> str:
    # importlib.metadata costs ~25 ms to import: only pay for it when the version is asked for.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-pmap")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    raise AttributeError(f"module 'pytest_pmap' has no attribute {name!r}")

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
    "ProcFS",
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
