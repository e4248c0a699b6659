"""pytest-pmap: memory budgets for CI from the kernel's own memory map, printed the way pmap prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._engine.acquire import snapshot
from ._engine.mapping import Mapping
from ._engine.procfs import ProcFS
from ._engine.snapshot import Snapshot
from ._engine.totals import METRICS, Totals
from .errors import (
    AccessDenied,
    BudgetSyntaxError,
    NotSupported,
    PidReused,
    PmapError,
    PmapWarning,
    ProcessGone,
    SmapsParseError,
    SnapshotFileError,
    UsageError,
)
from .size import GiB, KiB, MiB, Size, TiB, parse_size

if TYPE_CHECKING:
    from ._engine.diff import MapDiff, MappingChange
    from ._gate.results import RunResults
    from ._measure.budget import Violation
    from ._measure.probe import NewMappings, Probe, Reading
    from ._measure.result import MemoryResult

#: Names imported on first use, so that the `pytest-pmap` command starts fast.
_LAZY = {
    "MapDiff": "_engine.diff", "MappingChange": "_engine.diff",
    "NewMappings": "_measure.probe", "Probe": "_measure.probe", "Reading": "_measure.probe",
    "Violation": "_measure.budget",
    "MemoryResult": "_measure.result", "RunResults": "_gate.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    # importlib.metadata costs ~25 ms to import: only pay for it when the version is asked for.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-pmap")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    raise AttributeError(f"module 'pytest_pmap' has no attribute {name!r}")

__all__ = [
    "METRICS",
    "AccessDenied",
    "BudgetSyntaxError",
    "GiB",
    "KiB",
    "MapDiff",
    "Mapping",
    "MappingChange",
    "MemoryResult",
    "MiB",
    "NewMappings",
    "NotSupported",
    "PidReused",
    "PmapError",
    "PmapWarning",
    "Probe",
    "ProcFS",
    "ProcessGone",
    "Reading",
    "RunResults",
    "Size",
    "SmapsParseError",
    "Snapshot",
    "SnapshotFileError",
    "TiB",
    "Totals",
    "UsageError",
    "Violation",
    "__version__",
    "parse_size",
    "snapshot",
]
