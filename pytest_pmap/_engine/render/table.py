"""pmap -X, -XX and -c/-C: every numeric smaps field of every mapping, in columns as wide as their
values, rendered column by column.

pmap reads smaps twice (widths and totals first, then the rows); here every run of the process is
gathered first, column by column: the header columns from the run's parsed header lines, the first
field (Size) a cut per block, and the other fields from the run's `Sections`, whose distinct texts
are each parsed and formatted once. A run without the kernel's layout is read block by block into
the same columns. Which columns show is pmap's `is_enabled` (`Shown`).

Pure functions: no /proc here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ...errors import PmapError, SmapsParseError
from ..parse.fields import numeric_fields, text_at
from ..parse.run import Run
from .text import text as _text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from ..mapping import Span

__all__ = ["X_HIDDEN", "Shown", "smaps_table"]

#: The fields -X leaves out (pmap's `is_unimportant`); -XX shows every field and VmFlags.
X_HIDDEN = frozenset({
    "AnonHugePages", "KernelPageSize", "MMUPageSize", "Shared_Clean", "Shared_Dirty", "Private_Clean",
    "Private_Dirty", "VmFlags",
})
_FIXED = ("Address", "Perm", "Offset", "Device", "Inode")


class Shown:
    """Which columns a smaps table shows, as pmap's `is_enabled` decides: everything but `hidden`
    (-X, -XX), or only the names an rc file lists (`only`). Address always shows."""

    __slots__ = ("hidden", "only")

    def __init__(self, hidden: frozenset[str] = frozenset(), only: Optional[frozenset[str]] = None) -> None:
        self.hidden = hidden
        self.only = only
        """The names an rc file enables (`Perm`, `Rss`, `VmFlags`, `Mapping`, ...); None for -X and -XX."""

    def __call__(self, name: str) -> bool:
        return name in self.only if self.only is not None else name not in self.hidden


#: -X and -XX.
SHOWN_X = Shown(X_HIDDEN)
SHOWN_XX = Shown()


class _Columns:
    """Every mapping of one process, column by column."""

    __slots__ = ("fields", "firsts", "fixed", "flags", "names", "rests", "spans")

    def __init__(self) -> None:
        self.fixed: list[list[str]] = [[], [], [], [], []]
        """Address (the kernel's hex start), Perm, Offset, Device, Inode: as smaps writes them."""
        self.spans: list[Span] = []
        """The spans gathered, in order: where each block's header line is, to name it in an error."""
        self.names: list[bytes] = []
        """The Mapping column: the name after the inode, cut to 127 bytes."""
        self.flags: list[Optional[bytes]] = []
        """VmFlags, or None for a block without it."""
        self.firsts: list[tuple[bytes, bytes]] = []
        """Each block's first numeric field (Size) as (name, digits)."""
        self.rests: list[object] = []
        """Each block's key into `fields`: the text of its other field lines."""
        self.fields: dict[object, list[tuple[bytes, bytes]]] = {}
        """Key -> the numeric fields after the first, (name, digits), in order."""


def smaps_table(pid: int, spans: Iterable[Span], shown: Shown, quiet: bool, show_path: bool, lines: list[str]) -> None:
    """Append pmap's -X/-XX/-c table of the spans (one process) to `lines`: column header, rows, totals."""
    cols = _Columns()
    for run, first, stop in spans:
        cols.spans.append((run, first, stop))
        if run.sections is None or first != 0 or stop != len(run) or not _gather_run(run, cols):
            _gather_blocks(run, first, stop, cols)
    if not cols.names:
        return
    names = _field_names(pid, cols, shown)
    show = [name for name in names if shown(name)]
    fixed_shown = [i == 0 or shown(title) for i, title in enumerate(_FIXED)]
    flags_shown = shown("VmFlags") and any(f is not None for f in cols.flags)

    # Each field's values: a column of the first field, and per distinct key for the others.
    first_name = names[0]
    first_values = [digits.decode() for _, digits in cols.firsts]
    counts = Counter(cols.rests)
    rest_values = {key: {_text(n): v.decode() for n, v in fields} for key, fields in cols.fields.items()}
    totals = {name: _total(name, first_name, first_values, counts, rest_values) for name in show}

    fixed_widths = [max(map(len, column)) for column in cols.fixed]
    if quiet:
        widths = {name: _widest(name, first_name, first_values, rest_values) for name in show}
        flags_width = max((len(f) for f in cols.flags if f is not None), default=0)
    else:
        fixed_widths = [max(w, len(t)) for w, t in zip(fixed_widths, _FIXED)]
        widths = {name: max(len(name), len(str(totals[name]))) for name in show}
        flags_width = max(max((len(f) for f in cols.flags if f is not None), default=0), len("VmFlags"))
        titles = [t.rjust(w) for t, w, on in zip(_FIXED, fixed_widths, fixed_shown) if on]
        titles += [name.rjust(widths[name]) for name in show]
        if flags_shown:
            titles.append("VmFlags".rjust(flags_width))
        lines.append("".join(t + " " for t in titles) + ("Mapping" if shown("Mapping") else ""))

    # The rows, column by column: each distinct value of a column is formatted once.
    columns = [_justified(column, w) for column, w, on in zip(cols.fixed, fixed_widths, fixed_shown) if on]
    if first_name in widths:
        columns.append(_justified(first_values, widths[first_name]))
    others = [name for name in show if name != first_name]
    if others:
        cells = {key: " ".join(values[name].rjust(widths[name]) for name in others if name in values)
                 for key, values in rest_values.items()}
        columns.append(list(map(cells.__getitem__, cols.rests)))
    if flags_shown:
        columns.append(_justified([_text(f or b"") for f in cols.flags], flags_width))
    if shown("Mapping"):
        columns.append(_mapping_names(cols.names, show_path))
    lines += map(" ".join, zip(*columns))
    if not quiet and show:
        gap = " " * sum(w + 1 for w, on in zip(fixed_widths, fixed_shown) if on)
        lines.append(gap + "".join("=" * widths[name] + " " for name in show))
        lines.append(gap + "".join(str(totals[name]).rjust(widths[name]) + " " for name in show) + "KB ")


def _gather_run(run: Run, cols: _Columns) -> bool:
    """Add a whole run of the kernel's layout to `cols`, column by column; False (and nothing
    added) when some line is not what that layout promises."""
    sections = run.sections
    assert sections is not None
    try:
        header = run.header_columns()
    except SmapsParseError:
        return False
    parsed: dict[object, list[tuple[bytes, bytes]]] = {}
    for section in dict.fromkeys(sections.of_block):
        found = numeric_fields(section)
        if len(found) != section.count(b"\n"):  # a line that is not `Name: number`
            return False
        parsed[section] = found
    text, nls = run.text, run.nls
    start = sections.start
    cuts = [text[nl + 1 : nl + start] for nl in nls]  # the first field line, without its newline
    firsts = {cut: numeric_fields(b"\n" + cut) for cut in set(cuts)}
    if not all(len(found) == 1 for found in firsts.values()):
        return False
    first_of = {cut: found[0] for cut, found in firsts.items()}
    offsets, devices, inodes = header.texts()
    cols.fixed[0] += header.start_texts
    cols.fixed[1] += header.perms
    for column, values in zip(cols.fixed[2:], (offsets, devices, inodes)):
        column += map(_text, values)
    cols.names += (name.lstrip()[:127] for name in header.raw_names())
    flag_texts = [text[nl + sections.stop + 9 : end] for nl, end in zip(nls, run.ends)]  # after "\nVmFlags:"
    flags = {t: t.strip() for t in set(flag_texts)}
    cols.flags += map(flags.__getitem__, flag_texts)
    cols.firsts += map(first_of.__getitem__, cuts)
    cols.rests += sections.of_block
    cols.fields.update(parsed)
    return True


def _gather_blocks(run: Run, first: int, stop: int, cols: _Columns) -> None:
    """Add blocks first..stop-1 of a run to `cols`, one block at a time, as pmap reads them."""
    for i in range(first, stop):
        body = run.text[run.nls[i] : run.ends[i]]
        header_line = run.header_line(i)
        parts = header_line.split(None, 5)
        if len(parts) < 5:
            raise PmapError(f"Unknown format in smaps file: {_text(header_line)}")
        values = numeric_fields(body)
        cols.fixed[0].append(_text(parts[0].split(b"-", 1)[0]))
        for column, value in zip(cols.fixed[1:], parts[1:5]):
            column.append(_text(value))
        cols.names.append((parts[5].lstrip() if len(parts) > 5 else b"")[:127])
        cols.flags.append(text_at(body, b"\nVmFlags:", 0, len(body)))
        cols.firsts.append(values[0] if values else (b"", b""))
        key = tuple(values[1:])
        cols.rests.append(key)
        cols.fields[key] = values[1:]


def _header(cols: _Columns, block: int) -> bytes:
    """The header line of the `block`-th block gathered."""
    for run, first, stop in cols.spans:
        if block < stop - first:
            return run.header_line(first + block)
        block -= stop - first
    raise IndexError(block)


def _field_names(pid: int, cols: _Columns, shown: Shown) -> list[str]:
    """The numeric fields, in the first block's order; every block must have the same sequence of
    fields as the first (pmap-format.md: a different field sequence is an error)."""
    def names_of(first: tuple[bytes, bytes], rest: object) -> list[str]:
        return [_text(n) for n, _ in ([first] if first[0] else []) + cols.fields[rest]]

    names = names_of(cols.firsts[0], cols.rests[0])
    for first, rest in dict.fromkeys(zip(cols.firsts, cols.rests)):
        if names_of(first, rest) != names:
            block = next(i for i, key in enumerate(zip(cols.firsts, cols.rests)) if key == (first, rest))
            raise PmapError(f"PID {pid}: inconsistent detail field in smaps file, line: {_text(_header(cols, block))}")
    return names


def _total(name: str, first_name: str, first_values: list[str], counts: Counter[object],
           rest_values: dict[object, dict[str, str]]) -> int:
    """A field's total over every block: each distinct value (or text of field lines) once, times its count."""
    if name == first_name:
        return sum(int(v) * n for v, n in Counter(first_values).items())
    return sum(int(rest_values[key].get(name, "0")) * n for key, n in counts.items())


def _widest(name: str, first_name: str, first_values: list[str], rest_values: dict[object, dict[str, str]]) -> int:
    """The longest value of a field (-q: widths come from the values, not the totals)."""
    if name == first_name:
        return max(map(len, set(first_values)))
    return max((len(values[name]) for values in rest_values.values() if name in values), default=0)


def _justified(column: list[str], width: int) -> list[str]:
    """The column's values right-justified to `width`; each distinct value formatted once."""
    text = {v: v.rjust(width) for v in set(column)}
    return list(map(text.__getitem__, column))


def _mapping_names(raws: list[bytes], show_path: bool) -> list[str]:
    """The Mapping column: the (cut) name whole with -p, else from its last `/` on."""
    shown = {raw: _text(raw if show_path else raw[raw.rfind(b"/") + 1 :]) for raw in set(raws)}
    return list(map(shown.__getitem__, raws))

