"""Every test's measurements from one run, and the versioned JSON file that holds them.

One file format serves three jobs: the `--pmap-json` report, the `--pmap-save-baseline` baseline
(the same document: any report can be a baseline) and the input of `pytest-pmap compare`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._engine.files import dumps, read_json, write_atomic
from .._measure.result import MemoryResult
from ..errors import PmapError
from .environment import Environment

__all__ = ["ResultsFileError", "RunResults"]


class ResultsFileError(PmapError):
    """A results or baseline file is missing, corrupt, foreign, or from a newer pytest-pmap."""


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
            "environment": dict(vars(self.environment).items()),
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: object, *, source: str = "results") -> RunResults:
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
        return dumps(self.to_json())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically: a reader never sees half of it, and an old one is never lost."""
        target = Path(path)
        write_atomic(target, self.dumps())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], what: str = "results file") -> RunResults:
        """Read a file written by `save()`; `what` names it in errors (`baseline file`)."""
        name = f"{what} {os.fspath(path)!r}"
        return cls.from_json(read_json(path, name, ResultsFileError), source=name)
