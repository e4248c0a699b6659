"""Every test's measurements from one run, and the versioned JSON file that holds them.

One file format serves three jobs: the `--pmap-json` report, the `--pmap-save-baseline` baseline
(the same document: any report can be a baseline) and the input of `pytest-pmap compare`.

Version 1 has grown optional fields since it was first written (`complete`, `exit_status`,
`incomplete_reason`; in files made by `pytest-pmap merge`, `samples`, `inputs` and `notes`); a
file without them reads as before, and a reader that does not know them ignores them, so the
version did not change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from .._engine.files import dumps, write_atomic
from .._engine.jsonfiles import is_time, read_json
from .._measure.result import MemoryResult
from ..errors import PmapError
from .environment import Environment

__all__ = ["MergedInput", "ResultsFileError", "RunResults", "last_of_each", "load_baseline"]


class ResultsFileError(PmapError):
    """A results or baseline file is missing, corrupt, foreign, from a newer pytest-pmap, empty,
    names a test twice, or (as a baseline) comes from a run that did not finish."""


@dataclass(frozen=True)
class MergedInput:
    """One of the files a merged results file was made from (`pytest-pmap merge`)."""

    file: str
    """The file as it was named on the command line."""
    tests: int
    """How many results it held."""
    environment: Environment = field(default_factory=Environment)
    """Where it was measured."""
    complete: Optional[bool] = None
    """Whether its run finished (None when it did not say)."""
    incomplete_reason: str = ""
    """Why it did not, "" when it did."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"file": self.file, "tests": self.tests, "environment": dict(vars(self.environment).items()),
                "complete": self.complete, "incomplete_reason": self.incomplete_reason}

    @classmethod
    def from_json(cls, data: object) -> MergedInput:
        """Rebuild from `to_json()`; raises KeyError, TypeError or ValueError on a bad shape."""
        if not isinstance(data, dict):
            raise TypeError("an entry of \"inputs\" must be an object")
        complete = data.get("complete")
        if complete is not None and not isinstance(complete, bool):
            raise TypeError(f"an input's \"complete\" is {complete!r}, not true or false")
        return cls(str(data["file"]), int(data["tests"]), _environment(data.get("environment")), complete,
                   str(data.get("incomplete_reason") or ""))


def _environment(env: object) -> Environment:
    """The environment a file records; a field of the wrong type (a number for `python`, text for
    `page_size`) raises TypeError naming it, as reports join and compare them as they are."""
    if not isinstance(env, dict):
        env = {}
    defaults = vars(Environment())
    fields = {k: env[k] for k in defaults if k in env}
    for key, value in fields.items():
        kind = type(defaults[key])
        if type(value) is not kind or (kind is int and not 0 <= value < 1 << 63):
            raise TypeError(f"\"environment.{key}\" is {value!r:.40}, not {'text' if kind is str else 'a number of bytes'}")
    return Environment(**fields)


@dataclass(frozen=True)
class RunResults:
    """Every test's measurements from one run, and where they were taken."""

    FORMAT: ClassVar[str] = "pytest-pmap-results"
    VERSION: ClassVar[int] = 1

    results: tuple[MemoryResult, ...]
    """One per test, in the order they finished."""
    environment: Environment = field(default_factory=Environment)
    created_at: float = field(default_factory=time.time)
    """When the run ended (seconds since the epoch)."""
    complete: Optional[bool] = None
    """True when the session ran every test it collected; False when it did not finish: interrupted
    (Ctrl-C, `pytest.exit()`, a collection error), stopped early (`-x`, `--maxfail`, `--stepwise`),
    crashed (an internal error), or an xdist worker was lost with its measurements. None when
    nobody said (a file written before pytest-pmap recorded it)."""
    exit_status: Optional[int] = None
    """pytest's exit status for the session, before the baseline gate's verdict; None when not recorded."""
    incomplete_reason: str = ""
    """Why the run did not finish (`stopping after 1 failures`), "" when it did."""
    samples: bool = False
    """True for several runs merged as samples (`pytest-pmap merge --samples`): a test may then be
    measured more than once (its samples in the order of the inputs), and a baseline judges it
    against the most it grew in any of them. Only such a file may repeat a test."""
    inputs: tuple[MergedInput, ...] = ()
    """The files this one was merged from, each with its environment; empty for one run's file."""
    notes: tuple[str, ...] = ()
    """What a reader of the file should know of how it was made (its inputs were measured in
    different environments), as sentences; comparisons against it repeat them as warnings."""

    def by_test(self) -> dict[str, MemoryResult]:
        """Node ID -> result; with `samples`, one result per test holding, for each figure, the
        largest of its samples: the test's own spread is then within its allowance."""
        if not self.samples:
            return {r.nodeid: r for r in self.results}
        grouped: dict[str, list[MemoryResult]] = {}
        for result in self.results:
            grouped.setdefault(result.nodeid, []).append(result)
        return {nodeid: _largest(group) for nodeid, group in grouped.items()}

    def outcome(self) -> str:
        """How the run ended, for messages: `interrupted: KeyboardInterrupt, exit status 2`."""
        if self.complete is not False:
            return "complete"
        # A merged run's reason already gives each unfinished input's exit status.
        status = "" if self.exit_status is None or self.inputs else f", exit status {self.exit_status}"
        return f"{self.incomplete_reason or 'it did not finish'}{status}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "created_at": self.created_at,
            "complete": self.complete,
            "exit_status": self.exit_status,
            "incomplete_reason": self.incomplete_reason,
            **({"samples": True} if self.samples else {}),
            "environment": dict(vars(self.environment).items()),
            **({"inputs": [i.to_json() for i in self.inputs]} if self.inputs else {}),
            **({"notes": list(self.notes)} if self.notes else {}),
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: object, *, source: str = "results", allow_empty: bool = False) -> RunResults:
        """Rebuild from `to_json()` output; `source` names the file in errors. A file with no
        results, or that names a test twice, is an error unless `allow_empty` (the first)."""
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
            environment = _environment(data.get("environment"))
            samples = data.get("samples", False)
            if not isinstance(samples, bool):
                raise TypeError(f"\"samples\" is {samples!r}, not true or false")
            inputs = tuple(MergedInput.from_json(i) for i in data.get("inputs") or ())
            notes = tuple(str(n) for n in data.get("notes") or ())
            results = tuple(MemoryResult.from_json(r) for r in data["results"])
            complete, status, reason = data.get("complete"), data.get("exit_status"), data.get("incomplete_reason") or ""
            if complete is not None and not isinstance(complete, bool):
                raise TypeError(f"\"complete\" is {complete!r}, not true or false")
            if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
                raise TypeError(f"\"exit_status\" is {status!r}, not a number")
            created_at = data.get("created_at") or 0.0
            if not is_time(created_at):  # shown as a date by `report`
                raise ValueError(f"\"created_at\" is {created_at!r:.40}, not a time")
            run = cls(results, environment, float(created_at), complete, status, str(reason),
                      samples, inputs, notes)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # OverflowError: int(Infinity)
            raise ResultsFileError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None
        if not run.results and not allow_empty:
            raise ResultsFileError(f"{source} has no results: was it saved from the right run?")
        # One measurement per test, unless the file says it holds samples: a second one is then a
        # file edited or joined by hand, and keeping either would gate against a number nobody chose.
        seen: dict[str, int] = {}
        for number, result in enumerate(() if run.samples else run.results, 1):
            if result.nodeid in seen:
                raise ResultsFileError(
                    f"{source} names test {result.nodeid!r} twice (results {seen[result.nodeid]} and {number}); "
                    "a results file holds one measurement per test (pytest-pmap merge --samples writes one that "
                    "holds several, and says so)"
                )
            seen[result.nodeid] = number
        return run

    def dumps(self) -> bytes:
        """The file's bytes."""
        return dumps(self.to_json())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically: a reader never sees half of it, and an old one is never lost."""
        target = Path(path)
        write_atomic(target, self.dumps())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], what: str = "results file", *, allow_empty: bool = False) -> RunResults:
        """Read a file written by `save()`; `what` names it in errors (`baseline file`). A file
        with no results is an error unless `allow_empty`."""
        name = f"{what} {os.fspath(path)!r}"
        return cls.from_json(read_json(path, name, ResultsFileError), source=name, allow_empty=allow_empty)


def load_baseline(
    path: str | os.PathLike[str], *, allow_empty: bool = False, allow_incomplete: bool = False, flags: str = "--pmap-"
) -> RunResults:
    """A results file to gate against. Beyond what `RunResults.load` refuses, a baseline must hold
    results (`allow_empty` accepts one that does not) and come from a run that finished
    (`allow_incomplete`): a test it did not measure would be "new", and never gated. Each refusal
    names the option that overrides it, `flags` + `allow-empty-baseline` and so on."""
    name = f"baseline file {os.fspath(path)!r}"
    run = RunResults.from_json(read_json(path, name, ResultsFileError), source=name, allow_empty=True)
    if not run.results and not allow_empty:
        raise ResultsFileError(
            f"{name} has no results: was it saved from the right run? Nothing could be gated against it; "
            f"to run the gate anyway, pass {flags}allow-empty-baseline"
        )
    if run.complete is False and not allow_incomplete:
        raise ResultsFileError(
            f"{name} is from a run that did not finish: {run.outcome()}; the {len(run.results)} tests it measured "
            f"would be gated and the rest would pass as new. Save it again from a whole run, or pass "
            f"{flags}allow-incomplete-baseline"
        )
    return run


def _largest(samples: list[MemoryResult]) -> MemoryResult:
    """One result with, for each figure, the largest value any sample measured (None where none did)."""
    if len(samples) == 1:
        return samples[0]

    def most(values: Iterable[Optional[int]]) -> Optional[int]:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    keys = dict.fromkeys(k for s in samples for k in s.growth)
    first = samples[0]
    return MemoryResult(first.nodeid, {k: most(s.growth.get(k) for s in samples) for k in keys},
                        most(s.peak_growth for s in samples), most(s.huge_pages for s in samples), first.new_regions)


def last_of_each(results: Iterable[MemoryResult]) -> list[MemoryResult]:
    """One result per test, the last one measured (a test run again in one session, by
    pytest-rerunfailures or `--keep-duplicates`, counts with its last run), in the order the
    tests first finished."""
    latest: dict[str, MemoryResult] = {}
    for result in results:
        latest[result.nodeid] = result
    return list(latest.values())
