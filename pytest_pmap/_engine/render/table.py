"""pmap -X and -XX: every numeric smaps field of every mapping, in columns as wide as their values.

Pure functions: no /proc here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from ...errors import PmapError
from ..mapping import Span
from ..parse.fields import numeric_fields, text_at
from .text import text as _text

__all__ = ["smaps_table"]

#: Columns -X leaves out; -XX shows every field and VmFlags.
_X_HIDDEN = {
    b"AnonHugePages", b"KernelPageSize", b"MMUPageSize", b"Shared_Clean", b"Shared_Dirty",
    b"Private_Clean", b"Private_Dirty",
}


def smaps_table(
    pid: int, spans: Iterable[Span], everything: bool, quiet: bool, show_path: bool, lines: list[str]
) -> None:
    """Append pmap -X's (or with `everything`, -XX's) rows and totals for the spans to `lines`."""
    rows = []
    field_names: Optional[list[bytes]] = None
    for run, first, stop in spans:
        for i in range(first, stop):
            body = run.text[run.nls[i] : run.ends[i]]
            header_line = run.header_line(i)
            values = numeric_fields(body)
            names = [name for name, _ in values]
            if field_names is None:
                field_names = names
            elif names != field_names:
                raise PmapError(f"PID {pid}: inconsistent detail field in smaps file, line: {_text(header_line)}")
            fixed = header_line.split(None, 5)
            if len(fixed) < 5:
                raise PmapError(f"PID {pid}: Unknown format in smaps file: {_text(header_line)}")
            name = (fixed[5].lstrip() if len(fixed) > 5 else b"")[:127]
            if not show_path:
                name = name[name.rfind(b"/") + 1 :]
            start = fixed[0].split(b"-", 1)[0]
            flags = text_at(body, b"\nVmFlags:", 0, len(body))
            rows.append(([start, *fixed[1:5]], [int(v) for _, v in values], flags, name))
    if not rows:
        return
    assert field_names is not None
    show = [i for i, n in enumerate(field_names) if everything or n not in _X_HIDDEN]
    flags_shown = everything and any(flags is not None for _, _, flags, _ in rows)
    totals = [sum(row[1][i] for row in rows) for i in show]

    fixed_titles = ["Address", "Perm", "Offset", "Device", "Inode"]
    fixed_widths = [max(len(row[0][c]) for row in rows) for c in range(5)]
    value_widths = [max(len(str(row[1][i])) for row in rows) for i in show]
    flags_width = max((len(f or b"") for _, _, f, _ in rows), default=0)
    if not quiet:
        fixed_widths = [max(w, len(t)) for w, t in zip(fixed_widths, fixed_titles)]
        value_widths = [max(len(field_names[i]), len(str(t))) for i, t in zip(show, totals)]
        flags_width = max(flags_width, len("VmFlags"))

    if not quiet:
        titles = [t.rjust(w) for t, w in zip(fixed_titles, fixed_widths)]
        titles += [_text(field_names[i]).rjust(w) for i, w in zip(show, value_widths)]
        if flags_shown:
            titles.append("VmFlags".rjust(flags_width))
        lines.append(" ".join(titles) + " Mapping")
    for fixed, numbers, flags, name in rows:
        cells = [_text(v).rjust(w) for v, w in zip(fixed, fixed_widths)]
        cells += [str(numbers[i]).rjust(w) for i, w in zip(show, value_widths)]
        if flags_shown:
            cells.append(_text(flags or b"").rjust(flags_width))
        lines.append(" ".join(cells) + " " + _text(name))
    if not quiet and show:
        gap = " " * sum(w + 1 for w in fixed_widths)
        lines.append(gap + "".join("=" * w + " " for w in value_widths))
        lines.append(gap + "".join(str(t).rjust(w) + " " for t, w in zip(totals, value_widths)) + "KB ")
