"""pytest-pmap: memory budgets for CI from the kernel's own memory map, printed the way pmap prints it."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._engine.acquire import snapshot
    from ._engine.diff import MapDiff, MappingChange
    from ._engine.mapping import Mapping
    from ._engine.metrics import METRICS
    from ._engine.procfs import ProcFS
    from ._engine.snapshot import Snapshot
    from ._engine.totals import Totals
    from ._engine.tree import TreeSnapshot, snapshot_tree
    from ._engine.treediff import ProcessChange, TreeDiff
    from ._gate.results import RunResults
    from ._measure.budget import Violation
    from ._measure.probe import NewMappings, Probe, Reading
    from ._measure.result import MemoryResult
    from ._measure.treeprobe import TreeProbe
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

#: Where each name lives. Every one is imported on first use: the pytest plugin imports this
#: package in every pytest run where it is installed, used or not, and the `pytest-pmap` command
#: must start fast.
_LAZY = {
    "snapshot": "_engine.acquire",
    "MapDiff": "_engine.diff", "MappingChange": "_engine.diff",
    "Mapping": "_engine.mapping",
    "METRICS": "_engine.metrics",
    "ProcFS": "_engine.procfs",
    "Snapshot": "_engine.snapshot",
    "Totals": "_engine.totals",
    "TreeSnapshot": "_engine.tree", "snapshot_tree": "_engine.tree",
    "TreeDiff": "_engine.treediff",
    "RunResults": "_gate.results",
    "Violation": "_measure.budget",
    "NewMappings": "_measure.probe", "Probe": "_measure.probe", "Reading": "_measure.probe",
    "MemoryResult": "_measure.result",
    **dict.fromkeys((
        "AccessDenied", "BudgetSyntaxError", "NotSupported", "PidReused", "PmapError", "PmapWarning", "ProcessGone",
        "SmapsParseError", "SnapshotFileError", "UsageError",
    ), "errors"),
    **dict.fromkeys(("GiB", "KiB", "MiB", "Size", "TiB", "parse_size"), "size"),
    "ProcessChange": "_engine.treediff", "TreeProbe": "_measure.treeprobe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # the next look-up is an ordinary one
        return value
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
    "ProcessChange",
    "ProcessGone",
    "Reading",
    "RunResults",
    "Size",
    "SmapsParseError",
    "Snapshot",
    "SnapshotFileError",
    "TiB",
    "Totals",
    "TreeDiff",
    "TreeProbe",
    "TreeSnapshot",
    "UsageError",
    "Violation",
    "__version__",
    "parse_size",
    "snapshot",
    "snapshot_tree",
]
