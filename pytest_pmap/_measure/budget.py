"""Budgets: limits from markers and `[tool.pytest_pmap]`, checked against a `Probe`.

Pure: no pytest here. A budget is a dict of limits (key -> `Size`) with the place it came from, so
every error names the test, the key and the source.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any, Optional

from .._engine.metrics import BUDGET_KEYS as KEYS
from .._engine.metrics import describe_budget_keys as describe_keys
from .._engine.snapshot import Snapshot
from ..errors import BudgetSyntaxError, NotSupported, hide_from_tracebacks
from ..size import Size
from .probe import Probe, Reading

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = [
    "KEYS",
    "Budget",
    "BudgetConfig",
    "Violation",
    "check",
    "describe_keys",
    "matches_nodeid",
    "measure",
    "parse_limits",
    "report_text",
]

def parse_limits(raw: MappingABC[str, Any], source: str) -> dict[str, Size]:
    """Budget keys -> sizes; an unknown key or a bad size raises `BudgetSyntaxError` naming `source`."""
    limits: dict[str, Size] = {}
    for key, value in raw.items():
        if key not in KEYS:
            close = fnmatch.filter(KEYS, f"*{key[:4]}*") if len(key) >= 4 else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BudgetSyntaxError(
                f"{source}: unknown budget key {key!r}{hint}; known keys: {', '.join(KEYS)}"
            )
        try:
            limits[key] = Size(value)
        except (BudgetSyntaxError, TypeError, ValueError) as exc:
            raise BudgetSyntaxError(f"{source}: {key}: {exc}") from None
        if limits[key] < 0:
            # Memory is never below zero, nor a peak below where it started. A negative growth
            # limit would demand that the test free memory, which the allocator decides (glibc
            # keeps freed heap): that is an assertion for the test itself to make.
            hint = ""
            if key.endswith("_growth") and key != "peak_growth":
                hint = f"; to require that a test frees memory, assert it in the test: assert pmap.growth.{key[:-7]} <= -8 * MiB"
            raise BudgetSyntaxError(f"{source}: {key}: {value!r} is negative; a budget is a limit of 0 bytes or more{hint}")
    return limits


@dataclass(frozen=True)
class Budget:
    """The limits that apply to one test, and where each came from."""

    limits: dict[str, Size] = field(default_factory=dict)
    """Key -> limit in bytes."""
    sources: dict[str, str] = field(default_factory=dict)
    """Key -> where the limit was set (`pyproject.toml [tool.pytest_pmap] defaults`, `marker`, ...)."""

    def __bool__(self) -> bool:
        return bool(self.limits)

    def merged(self, limits: MappingABC[str, Size], source: str) -> Budget:
        """This budget with `limits` from `source` on top."""
        return Budget({**self.limits, **limits}, {**self.sources, **dict.fromkeys(limits, source)})


def matches_nodeid(nodeid: str, pattern: str) -> bool:
    """True when a node-id glob matches: `*` and `?` are the wildcards; brackets are themselves, as
    in a parametrized test's node ID (`test_load[big]`), which fnmatch would read as a set of
    characters. Every node-id glob of pytest-pmap (budgets, accept, trend --test) is read here."""
    return fnmatch.fnmatchcase(nodeid, pattern.replace("[", "[[]"))


@dataclass(frozen=True)
class BudgetConfig:
    """`[tool.pytest_pmap]`, checked and parsed once: `defaults` for every test, and `budgets` by
    node-id glob, in file order."""

    defaults: Budget = field(default_factory=Budget)
    globs: tuple[tuple[str, dict[str, Size], str], ...] = ()
    """(node-id glob, its limits, where they were set)."""

    @classmethod
    def parse(cls, config: MappingABC[str, Any], source: str) -> BudgetConfig:
        """Raise `BudgetSyntaxError` for anything wrong in `config`, naming `source` and the key."""
        known = {"defaults", "budgets", "accept"}  # accept: the gate's (`_gate/accept.py`)
        for key in config:
            if key not in known:
                raise BudgetSyntaxError(f"{source}: unknown key {key!r}; expected {' and '.join(sorted(known))}")
        defaults = config.get("defaults", {})
        if not isinstance(defaults, MappingABC):
            raise BudgetSyntaxError(f"{source} defaults must be a table of budget keys, not {defaults!r}")
        budgets = config.get("budgets", {})
        if not isinstance(budgets, MappingABC):
            raise BudgetSyntaxError(f"{source} budgets must be a table of node-id globs, not {budgets!r}")
        globs = []
        for pattern, raw in budgets.items():
            where = f"{source} budgets[{pattern!r}]"
            if not isinstance(raw, MappingABC):
                raise BudgetSyntaxError(f"{where} must be a table of budget keys, not {raw!r}")
            globs.append((pattern, parse_limits(raw, where), where))
        where = f"{source} defaults"
        return cls(Budget().merged(parse_limits(defaults, where), where), tuple(globs))

    def for_test(self, nodeid: str) -> Budget:
        """The budget of the test `nodeid`: the defaults, then every glob that matches it. `*` and
        `?` are the wildcards; brackets are themselves, as in a parametrized test's node ID
        (`test_load[big]`), which fnmatch would read as a set of characters and never match."""
        budget = self.defaults
        for pattern, limits, where in self.globs:
            if matches_nodeid(nodeid, pattern):
                budget = budget.merged(limits, where)
        return budget


@dataclass(frozen=True)
class Violation:
    """One broken limit: the key, the limit, what was measured, and the evidence."""

    key: str
    limit: Size
    actual: Size
    source: str
    """Where the limit was set."""
    evidence: Optional[Reading] = field(default=None, repr=False, compare=False)
    """The reading behind `actual`: `evidence.explain()` is the pmap-formatted diff."""

    @property
    def line(self) -> str:
        """`uss_growth: 24576K > 8192K (limit from marker)`."""
        return f"{self.key}: {Size.of(self.actual)} > {Size.of(self.limit)} (limit from {self.source})"


def measure(key: str, probe: Probe, after: Snapshot) -> tuple[Optional[Reading], str]:
    """The value a budget key caps, from `probe`'s baseline to `after`; (None, why) when the
    kernel does not say."""
    if key in ("new_anon", "new_mapping"):
        new = probe.new_mappings(anon=True if key == "new_anon" else None, after=after)
        largest = max((int(c.new) for c in new), default=0)
        return Reading.of_value(largest, key, new.diff.before, new.diff.after, ignore=new.diff.ignore), ""
    try:
        return probe.reading(key, after), ""
    except NotSupported as exc:
        return None, str(exc)


def check(budget: Budget, probe: Probe) -> tuple[list[Violation], list[str]]:
    """Every limit of `budget` that `probe` exceeds now, and the limits that could not be checked (why)."""
    after = probe.snapshot()
    violations: list[Violation] = []
    unchecked: list[str] = []
    for key, limit in budget.limits.items():
        value, why = measure(key, probe, after)
        if value is None:
            unchecked.append(f"{key}: not checked: {why}")
        elif value > limit:
            violations.append(Violation(key, limit, Size.of(value), budget.sources[key], value))
    return violations, unchecked


def report_text(violations: Iterable[Violation]) -> str:
    """The text of a failed budget: every broken limit, then the diff once."""
    violations = list(violations)
    lines = [f"pmap budget exceeded ({len(violations)} limit{'s' if len(violations) != 1 else ''}):"]
    lines += [f"  {v.line}" for v in violations]
    evidence = next((v.evidence for v in violations if v.evidence is not None), None)  # one diff serves all
    return "\n".join(lines) + ("" if evidence is None else "\n\n" + evidence.explain())
