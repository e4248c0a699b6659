"""Every test's measurements from one run, and the versioned JSON file that holds them.

One file format serves three jobs: the `--pmap-json` report, the `--pmap-save-baseline` baseline
(the same document: any report can be a baseline) and the input of `pytest-pmap compare`.
Pure, apart from `current_environment()`, which reads a few facts about this machine.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from ._files import write_atomic
from .errors import PmapError
from .model import METRICS
from .size import MiB, Size

__all__ = [
    "GATE_METRICS", "Environment", "MemoryResult", "NewRegion", "ResultsFileError", "RunResults",
    "current_environment",
]

#: The metrics a run can be gated on: each metric's growth during a test, and the peak's rise.
GATE_METRICS: dict[str, str] = {
    **{f"{name}_growth": f"growth of {name} during the test" for name in METRICS},
    "peak_growth": "how far the RSS peak during the test rose above the RSS at its start",
}


class ResultsFileError(PmapError):
    """A results or baseline file is missing, corrupt, foreign, or from a newer pytest-pmap."""


@dataclass(frozen=True)
class NewRegion:
    """One stretch of address space that was not mapped when the test started."""

    start: int
    """Lowest address."""
    size: int
    """New bytes (a region merged into an older mapping counts with its new bytes only)."""
    mode: str
    """pmap's five-letter mode (`rw---`)."""
    name: str
    """pmap's Mapping column (`[ anon ]`, `libfoo.so`)."""

    def row(self) -> str:
        """The region in pmap -x's Address, Kbytes, Mode and Mapping columns."""
        return f"{self.start:016x} {Size.of(self.size).signed()[:-1]:>8} {self.mode} {self.name.strip()}"


@dataclass(frozen=True)
class MemoryResult:
    """What `--pmap` measured for one test's call phase."""

    nodeid: str
    growth: dict[str, Optional[int]] = field(default_factory=dict)
    """Metric -> bytes gained during the call (negative when it shrank); None when not measured."""
    peak_growth: Optional[int] = None
    """How far the RSS peak during the call rose above the RSS at its start; None when the peak
    could not be reset."""
    huge_pages: Optional[int] = None
    """Change in transparent huge pages (AnonHugePages) during the call; None when not measured."""
    new_regions: tuple[NewRegion, ...] = ()
    """Address space new during the call, one entry per group of overlapping mappings."""
    budget: tuple[str, ...] = ()
    """The broken limits of the test's budget, as report lines."""
    failure: str = ""
    """The budget failure's report: every broken limit and the pmap-formatted diff."""

    @property
    def new_mappings(self) -> int:
        """How many groups of mappings cover address space new during the call."""
        return len(self.new_regions)

    @property
    def largest_new(self) -> int:
        """Bytes of new address space in the largest of them."""
        return max((r.size for r in self.new_regions), default=0)

    def value(self, metric: str) -> Optional[int]:
        """The measurement of a gate metric (`uss_growth`, `peak_growth`, ...); None when not measured."""
        if metric == "peak_growth":
            return self.peak_growth
        return self.growth.get(metric[: -len("_growth")])

    def measured(self) -> dict[str, int]:
        """Every gate metric that was measured, with its value (bytes)."""
        return {name: value for name in GATE_METRICS if (value := self.value(name)) is not None}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "nodeid": self.nodeid,
            "growth": dict(self.growth),
            "peak_growth": self.peak_growth,
            "huge_pages": self.huge_pages,
            "new_mappings": [
                {"start": r.start, "size": r.size, "mode": r.mode, "name": r.name} for r in self.new_regions
            ],
            "budget": list(self.budget),
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: Any) -> MemoryResult:
        """Rebuild a result from `to_json()`; raises KeyError, TypeError or ValueError on a bad shape."""
        def size(value: Any) -> Optional[int]:
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{value!r} is not a number of bytes")
            return value

        if not isinstance(data, dict) or not isinstance(data["nodeid"], str):
            raise TypeError("a test's result must be an object with a \"nodeid\"")
        regions = tuple(
            NewRegion(int(r["start"]), int(r["size"]), str(r["mode"]), str(r["name"]))
            for r in data.get("new_mappings") or ()
        )
        return cls(
            nodeid=data["nodeid"],
            growth={str(k): size(v) for k, v in dict(data.get("growth") or {}).items()},
            peak_growth=size(data.get("peak_growth")),
            huge_pages=size(data.get("huge_pages")),
            new_regions=regions,
            budget=tuple(str(line) for line in data.get("budget") or ()),
            failure=str(data.get("failure") or ""),
        )


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


def _read_sys(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def huge_page_size() -> int:
    """Bytes in a transparent huge page on this machine (2 MiB on x86-64; 512 MiB on arm64 with
    64 KiB pages), from sysfs; 2 MiB where the kernel does not say."""
    huge = _read_sys("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
    return int(huge) if huge.isdigit() else 2 * MiB


def current_environment() -> Environment:
    """This machine, this Python, this kernel."""
    import platform

    enabled = _read_sys("/sys/kernel/mm/transparent_hugepage/enabled")  # "always [madvise] never"
    thp = enabled[enabled.find("[") + 1 : enabled.find("]")] if "[" in enabled else ""
    from . import __version__

    return Environment(
        machine=platform.machine(),
        host=platform.node(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        kernel=platform.release(),
        page_size=os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0,
        thp=thp,
        huge_page_size=huge_page_size(),
        pytest_pmap=str(__version__),
    )


@dataclass(frozen=True)
class RunResults:
    """Every test's measurements from one run, and where they were taken."""

    FORMAT: ClassVar[str] = "pytest-pmap-results"
    VERSION: ClassVar[int] = 1

    results: tuple[MemoryResult, ...]
    """One per test, in the order they finished (for a test run twice, the last one counts)."""
    environment: Environment = field(default_factory=Environment)
    created_at: float = field(default_factory=time.time)
    """When the run ended (seconds since the epoch)."""

    def by_test(self) -> dict[str, MemoryResult]:
        """Node ID -> result."""
        return {r.nodeid: r for r in self.results}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "created_at": self.created_at,
            "environment": {k: v for k, v in vars(self.environment).items()},
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "results") -> RunResults:
        """Rebuild from `to_json()` output; `source` names the file in errors."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ResultsFileError(
                f"{source} is not a pytest-pmap results file (no \"format\": \"{cls.FORMAT}\"); "
                "write one with --pmap-json or --pmap-save-baseline"
            )
        version = data.get("version")
        if version != cls.VERSION:
            newer = isinstance(version, int) and version > cls.VERSION
            raise ResultsFileError(
                f"{source} is a version {version!r} results file; this pytest-pmap reads version {cls.VERSION}: "
                + ("upgrade pytest-pmap" if newer else "save the baseline again")
            )
        try:
            env = data.get("environment") or {}
            known = {k: env[k] for k in vars(Environment()) if k in env}
            environment = Environment(**known)
            results = tuple(MemoryResult.from_json(r) for r in data["results"])
            return cls(results, environment, float(data.get("created_at") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsFileError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None

    def dumps(self) -> bytes:
        """The file's bytes."""
        return json.dumps(self.to_json(), indent=1).encode() + b"\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically: a reader never sees half of it, and an old one is never lost."""
        target = Path(path)
        write_atomic(target, self.dumps())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], what: str = "results file") -> RunResults:
        """Read a file written by `save()`; `what` names it in errors (`baseline file`)."""
        name = f"{what} {os.fspath(path)!r}"
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise ResultsFileError(f"{name} does not exist") from None
        except IsADirectoryError:
            raise ResultsFileError(f"{name} is a folder, not a file") from None
        except OSError as exc:
            raise ResultsFileError(f"cannot read {name}: {exc.strerror}") from None
        if not raw.strip():
            raise ResultsFileError(f"{name} is empty")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ResultsFileError(f"{name} is not valid JSON: {exc}") from None
        return cls.from_json(data, source=name)

