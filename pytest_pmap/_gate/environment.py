"""`Environment`: where a run was measured (machine, Python, kernel, pages), so that comparing runs
taken in different places can say so."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from .._engine.system import huge_page_size, read_sys
from ..size import MiB

__all__ = ["Environment", "current_environment"]


@dataclass(frozen=True)
class Environment:
    """Where a run was measured: a comparison across different ones warns."""

    COMPARED: ClassVar[tuple[tuple[str, str], ...]] = (
        ("machine", "machine"), ("python", "Python"), ("kernel", "kernel"),
        ("page_size", "page size"), ("thp", "transparent huge pages"),
    )

    machine: str = ""
    """The processor architecture (`x86_64`)."""
    host: str = ""
    """The host name (recorded, never compared: CI machines come and go)."""
    python: str = ""
    """Implementation and version (`CPython 3.11.7`)."""
    kernel: str = ""
    """The kernel release (`6.1.0-18-amd64`)."""
    page_size: int = 0
    """Bytes in a page."""
    thp: str = ""
    """Transparent huge pages mode (`always`, `madvise`, `never`; empty when unknown)."""
    huge_page_size: int = 2 * MiB
    """Bytes in a transparent huge page."""
    pytest_pmap: str = ""
    """The pytest-pmap version that measured."""

    def differences(self, other: Environment) -> list[str]:
        """What differs between the two, as `Python CPython 3.11.7 -> CPython 3.12.1` lines."""
        changed = []
        for attr, label in self.COMPARED:
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if mine and theirs and mine != theirs:
                changed.append(f"{label} {mine} -> {theirs}")
        return changed


def current_environment() -> Environment:
    """This machine, this Python, this kernel."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    enabled = read_sys("/sys/kernel/mm/transparent_hugepage/enabled")  # "always [madvise] never"
    thp = enabled[enabled.find("[") + 1 : enabled.find("]")] if "[" in enabled else ""
    try:
        ours = version("pytest-pmap")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "0+unknown"

    return Environment(
        machine=platform.machine(),
        host=platform.node(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        kernel=platform.release(),
        page_size=os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0,
        thp=thp,
        huge_page_size=huge_page_size(),
        pytest_pmap=ours,
    )
