"""A report renderer with a module-level cache that never evicts (the leak docs/leaks.md hunts)."""
from __future__ import annotations

import itertools

_RENDERED: dict[tuple[str, int], str] = {}
_RUN = itertools.count()


def render(title: str, rows: int) -> str:
    """The report as text; rendering is slow, so each result is kept for the next caller."""
    key = (title, rows)
    if key not in _RENDERED:
        _RENDERED[key] = "\n".join(f"{title} {i:>6} {'.' * 200}" for i in range(rows))
    return _RENDERED[key]


def monthly(rows: int = 4000) -> str:
    """This month's report: its title names the run, so every call renders (and keeps) a new one."""
    return render(f"report #{next(_RUN)}", rows)
