"""Snapshot -> text, exactly as procps-ng pmap 4.0.2 prints it (see pmap-format.md in the design notes).

Pure functions: no /proc here. Output is `str`; bytes that are not UTF-8 (pmap copies some of them
through unchanged) are kept as surrogate escapes, so `text.encode("utf-8", "surrogateescape")`
gives pmap's bytes.
"""

from __future__ import annotations

import locale
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import compress, repeat
from operator import add, and_, ge, is_, is_not, rshift, sub
from typing import Optional, TypeVar, cast

from . import _smaps
from .errors import PmapError
from .model import Mapping, Snapshot, Span, add_sizes_by_perms, mode_totals_of, spans

__all__ = ["FORMATS", "render", "render_runs", "header_line", "display_name", "mode", "locale_is_utf8", "pmap_bytes"]

FORMATS = ("default", "x", "d", "X", "XX")
FULL_RANGE = (0, (1 << 64) - 1)
#: Columns -X leaves out; -XX shows every field and VmFlags.
_X_HIDDEN = {
    b"AnonHugePages", b"KernelPageSize", b"MMUPageSize", b"Shared_Clean", b"Shared_Dirty",
    b"Private_Clean", b"Private_Dirty",
}
_CMDLINE_MAX = 131071
_PRINTABLE = bytes(range(0x20, 0x7F))
_CLEAN_TABLE = bytes(b if b in _PRINTABLE else ord("?") for b in range(256))
_T = TypeVar("_T")


def locale_is_utf8() -> bool:
    """True when the C library's character set is UTF-8, as it is for pmap after `setlocale(LC_ALL, "")`."""
    try:
        return locale.nl_langinfo(locale.CODESET) == "UTF-8"
    except (AttributeError, ValueError):
        return False


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def pmap_bytes(text: str) -> bytes:
    """The bytes pmap writes for text from this module (surrogate escapes become the raw bytes again)."""
    return text.encode("utf-8", "surrogateescape")


def escape(data: bytes, utf8: bool) -> str:
    """libproc2's `escape_str`: control bytes become `?` (UTF-8) or `.` (ASCII), other non-ASCII `?`."""
    out = bytearray()
    i, n = 0, len(data)
    if utf8:
        while i < n:
            c = data[i]
            if c < 0x80:
                out.append(0x3F if c < 0x20 or c == 0x7F else c)
                i += 1
                continue
            length = 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
            if not length or i + length > n:
                break  # from here on, the ASCII rule
            out += data[i : i + length]
            i += length
    for c in data[i:]:
        out.append(0x2E if c < 0x20 or c == 0x7F else 0x3F if c >= 0x80 else c)
    return _text(bytes(out))


def header_line(snap: Snapshot, utf8: Optional[bool] = None) -> str:
    """`"<pid>:   <command line>"`, the first line of every pmap listing."""
    utf8 = locale_is_utf8() if utf8 is None else utf8
    data = snap.raw_cmdline[:_CMDLINE_MAX]
    if data:
        text = data.rstrip(b"\0").replace(b"\0", b" ").replace(b"\n", b" ")
        if data[-1:] in (b"\n", b" ") and text.endswith(b" "):
            text = text[:-1]
        command = escape(text, utf8)
    else:
        command = f"[{escape(snap.comm, utf8)}]"
        if snap.state == "Z":
            command += " <defunct>"
    return f"{snap.pid}:   {command or '?'}"


def mode(perms: str) -> str:
    """pmap's five-letter mode: `rw-p` becomes `rw---`, `rw-s` becomes `rw-s-`."""
    return perms[:3] + ("s" if perms[3] == "s" else "-") + "-"


class _Names:
    """pmap's Mapping column, a run at a time: a file's shown name is worked out once per file."""

    def __init__(self, snap: Snapshot, show_path: bool) -> None:
        self.start_stack = snap.start_stack
        self.shm_minor = snap.shm_minor
        self.show_path = show_path
        self.shown: dict[bytes, str] = {}
        """Raw name -> shown name, for names that do not depend on the mapping (not the stack, not SysV)."""

    def column(self, columns: _smaps.HeaderColumns, first: int, stop: int) -> list[str]:
        """The Mapping column of blocks first..stop-1 of a run."""
        raws = columns.names[first:stop]
        distinct = set(raws)
        shown = self.shown
        for raw in distinct.difference(shown):
            shown[raw] = self._shown(raw)
        out = list(map(shown.__getitem__, raws))
        # Two names depend on the mapping: the stack's (the anonymous mapping holding its start) ...
        stack, starts = self.start_stack, columns.starts
        for i in compress(range(first, stop), map(ge, columns.ends[first:stop], repeat(stack))):
            if starts[i] <= stack and b"/" not in raws[i - first]:
                out[i - first] = "  [ stack ]"
        # ... and a SysV shared memory segment's, on the kernel's shmem device.
        if any(b"/SYSV" in raw for raw in distinct):
            _, majors, minors, inodes = columns.ids()
            for i, raw in enumerate(raws, first):
                if b"/SYSV" in raw and majors[i] == 0 and minors[i] == self.shm_minor:
                    out[i - first] = f"  [ shmid=0x{inodes[i]:x} ]"
        return out

    def _shown(self, raw: bytes) -> str:
        if b"/" not in raw:  # no file: pmap does not show [heap], [vdso] or [anon:...] by name
            return "  [ anon ]"
        name = raw.translate(_CLEAN_TABLE)
        return _text(name[name.find(b"/") :] if self.show_path else name[name.rfind(b"/") + 1 :])


def display_name(m: Mapping, snap: Snapshot, show_path: bool = False) -> str:
    """The Mapping column of pmap's default, -x and -d listings."""
    return _Names(snap, show_path).column(m._run.header_columns(), m._i, m._i + 1)[0]


_MODES = {perms: mode(perms) for perms in (f"{r}{w}{x}{s}" for r in "-r" for w in "-w" for x in "-x" for s in "-sp")}


@dataclass(frozen=True)
class _Rows:
    """The blocks of one span that pmap reads, and which of them it shows.

    pmap reads every mapping until the first that starts past the range (so it reads blocks
    `first` to `stop` - 1 of the span; `last` says it stopped in this span) and shows those
    that end inside or after the range.
    """

    first: int
    stop: int
    shown: Optional[list[bool]]
    """For each block read, whether it is shown; None when every one is."""
    last: bool

    @classmethod
    def of(cls, columns: _smaps.HeaderColumns, first: int, stop: int, rng: tuple[int, int]) -> _Rows:
        """The rows of blocks first..stop-1 of a run, for the range `rng` (both ends inclusive)."""
        low, high = rng
        read = stop
        if high != FULL_RANGE[1]:
            starts = columns.starts
            read = next((i for i in range(first, stop) if starts[i] > high), stop)
        shown = [end - 1 >= low for end in columns.ends[first:read]] if low else None
        return cls(first, read, shown, read < stop)

    def only(self, keep: Iterable[bool]) -> _Rows:
        """These rows, showing only those of the shown ones that `keep` says (one flag per block read)."""
        return replace(self, shown=list(keep) if self.shown is None else list(map(and_, self.shown, keep)))

    def pick(self, values: list[_T]) -> list[_T]:
        """The shown ones of values for the blocks read."""
        return values if self.shown is None else list(compress(values, self.shown))

    def take(self, column: list[_T]) -> list[_T]:
        """The shown ones of a column of the whole run."""
        return self.pick(column[self.first : self.stop])

    def names(self, names: _Names, columns: _smaps.HeaderColumns) -> list[str]:
        """The Mapping column of the shown blocks."""
        return self.pick(names.column(columns, self.first, self.stop))

    def sizes(self, columns: _smaps.HeaderColumns) -> list[int]:
        """The shown blocks' sizes in bytes."""
        return list(map(sub, self.take(columns.ends), self.take(columns.starts)))

    def modes(self, columns: _smaps.HeaderColumns) -> Iterator[str]:
        """The shown blocks' pmap modes (`rw---`)."""
        return map(_MODES.__getitem__, self.take(columns.perms))


def _row_spans(spans: Iterable[Span], rng: tuple[int, int]) -> Iterator[tuple[_smaps.Run, _smaps.HeaderColumns, _Rows]]:
    """Each span's run, header columns and rows, up to the first block past the range."""
    for run, first, stop in spans:
        columns = run.header_columns()
        rows = _Rows.of(columns, first, stop, rng)
        yield run, columns, rows
        if rows.last:
            return


def render(
    snap: Snapshot,
    fmt: str = "default",
    *,
    quiet: bool = False,
    show_path: bool = False,
    range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
    utf8: Optional[bool] = None,
) -> str:
    """What `pmap [-x|-d|-X|-XX] [-q] [-p] [-A L,H] PID` prints for `snap`, header line included."""
    if fmt in ("x", "X", "XX") and not snap.detail and snap.mappings:
        raise PmapError(
            f"PID {snap.pid}: this snapshot was taken with detail=False (maps only); "
            f"pmap -{fmt} needs smaps: take it with detail=True"
        )
    return _render(snap, spans(snap.mappings), fmt, quiet, show_path, range or FULL_RANGE, utf8)


def render_runs(
    snap: Snapshot,
    runs: Iterable[_smaps.Run],
    fmt: str = "default",
    *,
    quiet: bool = False,
    show_path: bool = False,
    range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
    utf8: Optional[bool] = None,
) -> str:
    """`render` for the mappings of the parser's runs, each rendered as it comes: the command
    renders a run while the next is read. `snap` gives the header line and what names depend
    on (PID, command line, stack); its mappings are not used."""
    whole = ((run, 0, len(run)) for run in runs)
    return _render(snap, whole, fmt, quiet, show_path, range or FULL_RANGE, utf8)


def _render(snap: Snapshot, spans: Iterable[Span], fmt: str, quiet: bool, show_path: bool,
            rng: tuple[int, int], utf8: Optional[bool]) -> str:
    if fmt not in FORMATS:
        raise PmapError(f"unknown pmap format {fmt!r}: use one of {', '.join(FORMATS)}")
    lines = [header_line(snap, utf8)]
    names = _Names(snap, show_path)
    if fmt == "default":
        _default(spans, names, rng, quiet, lines)
    elif fmt == "d":
        _device(spans, names, rng, quiet, lines)
    elif fmt == "x":
        _extended(spans, names, rng, quiet, lines)
    else:
        _smaps_table(snap.pid, spans, fmt == "XX", quiet, show_path, lines)
    return "\n".join(lines) + "\n"


def _default(spans: Iterable[Span], names: _Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    total = 0
    for _, columns, rows in _row_spans(spans, rng):
        sizes = rows.sizes(columns)
        total += sum(sizes)
        lines += map(" ".join, zip(
            _addresses(rows.take(columns.start_texts)), _formatted("%6dK", _kib(sizes)), rows.modes(columns),
            rows.names(names, columns),
        ))
    if not quiet:
        lines.append(f" total {total >> 10:16d}K")


def _device(spans: Iterable[Span], names: _Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'Mode':<5} {'Offset':<16} {'Device':<9} Mapping")
    by_perms: dict[str, int] = {}
    for _, columns, rows in _row_spans(spans, rng):
        starts, ends, perms = rows.take(columns.starts), rows.take(columns.ends), rows.take(columns.perms)
        offsets, majors, minors, _ = map(rows.take, columns.ids())
        add_sizes_by_perms(by_perms, perms, starts, ends)
        lines += map(
            "%016x %7d %s %016x %03x:%05x %s".__mod__,
            zip(starts, _kib(rows.sizes(columns)), rows.modes(columns), offsets, majors, minors, rows.names(names, columns)),
        )
    if not quiet:
        mapped, writeable, shared = mode_totals_of(by_perms)
        lines.append(f"mapped: {mapped >> 10}K    writeable/private: {writeable >> 10}K    shared: {shared >> 10}K")


#: The fields pmap -x reads: RSS, and Dirty as the sum of the middle two. A mapping without a
#: `Swap:` line is read (it counts in the totals) but not printed.
_EXTENDED_KEYS = (b"\nRss:", b"\nShared_Dirty:", b"\nPrivate_Dirty:", b"\nSwap:")


def _extended(spans: Iterable[Span], names: _Names, rng: tuple[int, int], quiet: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'RSS':>7} {'Dirty':>7} {'Mode':<5} Mapping")
    total = total_rss = total_dirty = 0
    for run, columns, rows in _row_spans(spans, rng):
        rss, shared_dirty, private_dirty, swap = (run.numbers(key)[rows.first : rows.stop] for key in _EXTENDED_KEYS)
        rss_kib, dirty_kib = _kib(rss), list(map(add, _kib(shared_dirty), _kib(private_dirty)))
        total_rss += sum(rss_kib)  # every mapping read counts, shown or not
        total_dirty += sum(dirty_kib)
        if _has_none(swap):
            rows = rows.only(map(is_not, swap, repeat(None)))
        sizes = rows.sizes(columns)
        total += sum(sizes)
        lines += map(" ".join, zip(
            _addresses(rows.take(columns.start_texts)), _formatted("%7d", _kib(sizes)), _formatted("%7d", rows.pick(rss_kib)),
            _formatted("%7d", rows.pick(dirty_kib)), rows.modes(columns), rows.names(names, columns),
        ))
    if not quiet:
        lines.append("---------------- ------- ------- ------- ")
        lines.append(f"{'total kB':<16} {total >> 10:7d} {total_rss:7d} {total_dirty:7d}")


def _kib(sizes: Sequence[Optional[int]]) -> list[int]:
    """Sizes in bytes as whole KiB, as pmap prints them; a missing one counts as 0."""
    if _has_none(sizes):
        return [(size or 0) >> 10 for size in sizes]
    return list(map(rshift, cast("Sequence[int]", sizes), repeat(10)))


def _formatted(fmt: str, values: list[int]) -> Iterator[str]:
    """Each value `fmt % value`; a column's values repeat, so each distinct one is formatted once."""
    text = {value: fmt % value for value in set(values)}
    return map(text.__getitem__, values)


def _addresses(texts: list[str]) -> Iterator[str]:
    """pmap's `%016lx` of each start address, from the kernel's hex text (the same number)."""
    if max(map(len, texts), default=0) > 16:  # leading zeros a kernel does not write
        return map("%016x".__mod__, map(int, texts, repeat(16)))
    return map(str.zfill, texts, repeat(16))


def _has_none(values: Iterable[object]) -> bool:
    """`None in values`, without asking each value whether it equals None (`Size` would parse it)."""
    return any(map(is_, values, repeat(None)))


def _smaps_table(
    pid: int, spans: Iterable[Span], everything: bool, quiet: bool, show_path: bool, lines: list[str]
) -> None:
    rows = []
    field_names: Optional[list[bytes]] = None
    for run, first, stop in spans:
        for i in range(first, stop):
            body = run.text[run.nls[i] : run.ends[i]]
            header_line = run.header_line(i)
            values = _smaps.numeric_fields(body)
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
            flags = _smaps.text_at(body, b"\nVmFlags:", 0, len(body))
            rows.append(([start] + fixed[1:5], [int(v) for _, v in values], flags, name))
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
