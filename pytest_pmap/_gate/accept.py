"""`[tool.pytest_pmap] accept = {"node-id glob" = "reason"}`: known increases, acknowledged.

A regressed test that an accept glob matches does not fail the gate; it is shown as accepted,
with the reason. A glob that matches no test of the run is reported (a renamed test, a typo), and
so is one that matched no regressing test (it can go).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .._measure.budget import matches_nodeid
from ..errors import BudgetSyntaxError

if TYPE_CHECKING:
    from .compare import Row

__all__ = ["apply_accept", "find_pyproject", "parse_accept", "project_accept", "read_accept"]


def parse_accept(raw: Any, source: str) -> dict[str, str]:
    """The `accept` table, checked: node-id glob -> reason. Raises `BudgetSyntaxError` naming `source`."""
    if not isinstance(raw, Mapping):
        raise BudgetSyntaxError(f"{source} accept must be a table of node-id glob = \"reason\", not {raw!r}")
    accept = {}
    for pattern, reason in raw.items():
        if not isinstance(reason, str) or not reason.strip():
            raise BudgetSyntaxError(f"{source} accept[{pattern!r}]: give the reason as a non-empty string, "
                                    f"not {reason!r}: the report shows it beside the test")
        accept[str(pattern)] = reason.strip()
    return accept


def read_accept(path: Path) -> tuple[dict[str, str], str]:
    """The `accept` table of a pyproject.toml (empty when the file or the table is absent), and
    how to name it; for the command line, which has no pytest to find the file."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}, ""
    except OSError as exc:
        raise BudgetSyntaxError(f"cannot read {path}: {exc.strerror}") from None
    if b"accept" not in data:
        return {}, ""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on old Pythons only
        import tomli as tomllib
    try:
        section = tomllib.loads(data.decode("utf-8")).get("tool", {}).get("pytest_pmap") or {}
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BudgetSyntaxError(f"cannot read {path}: {exc}") from None
    source = f"{path} [tool.pytest_pmap]"
    if not isinstance(section, dict) or "accept" not in section:
        return {}, ""
    return parse_accept(section["accept"], source), source


def find_pyproject(start: Optional[Path] = None) -> Optional[Path]:
    """The nearest pyproject.toml from `start` (the current folder) up to the root, where pytest
    run from there would find the project's; None when there is none."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate / "pyproject.toml"
    return None


def project_accept(start: Optional[Path] = None) -> tuple[dict[str, str], str, str]:
    """For the command line: the accept table of the nearest pyproject.toml (`find_pyproject`),
    how reports name it, and a line saying which file's table was used ("" when none was)."""
    path = find_pyproject(start)
    if path is None:
        return {}, "", ""
    shown = Path(os.path.relpath(path))  # `pyproject.toml`, `../pyproject.toml`: as the user would name it
    accept, source = read_accept(shown)
    if not accept:
        return {}, "", ""
    globs = f"{len(accept)} glob{'s' if len(accept) != 1 else ''}"
    return accept, source, f"accept: {globs} from {shown} [tool.pytest_pmap]"


def apply_accept(rows: list[Row], accept: Mapping[str, str], source: str) -> tuple[list[Row], list[str]]:
    """The rows with each accepted regression marked `accepted` (with its reason), and what to
    say of globs that matched no test, or no test that regressed."""
    matched: dict[str, bool] = dict.fromkeys(accept, False)
    used: dict[str, bool] = dict.fromkeys(accept, False)
    out = []
    for row in rows:
        for pattern, reason in accept.items():
            if row.status != "gone" and matches_nodeid(row.nodeid, pattern):
                matched[pattern] = True
                if row.status == "regressed":
                    used[pattern] = True
                    row = replace(row, status="accepted", reason=reason)
                break
        out.append(row)
    where = f" in {source}" if source else ""
    notes = [f"accept {p!r}{where} matches no test of this run: was the test renamed? Remove or fix the glob"
             for p, hit in matched.items() if not hit]
    notes += [f"accept {p!r}{where} matched no regressing test: if the increase is gone, it can be removed"
              for p in accept if matched[p] and not used[p]]
    return out, notes
