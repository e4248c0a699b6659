"""Snapshot -> text, exactly as procps-ng pmap 4.0.2 prints it (see pmap-format.md in the design notes).

Pure functions: no /proc here. Output is `str`; bytes that are not UTF-8 (pmap copies some of them
through unchanged) are kept as surrogate escapes, so `text.encode("utf-8", "surrogateescape")`
gives pmap's bytes.
"""

from __future__ import annotations

import locale
from collections.abc import Iterator, Sequence
from typing import Optional

from . import _smaps
from .errors import PmapError
from .model import Mapping, Snapshot, mode_totals

__all__ = ["FORMATS", "render", "header_line", "display_name", "mode", "locale_is_utf8", "pmap_bytes"]

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
    """pmap's Mapping column, by header: a file's shown name is worked out once per file."""

    def __init__(self, snap: Snapshot, show_path: bool) -> None:
        self.start_stack = snap.start_stack
        self.shm_minor = snap.shm_minor
        self.show_path = show_path
        self.files: dict[bytes, str] = {}

    def __call__(self, header: _smaps.HeaderFields) -> str:
        start, end, _, _, major, minor, inode, raw = header
        if b"/" not in raw:  # no file: pmap does not show [heap], [vdso] or [anon:...] by name
            return "  [ stack ]" if start <= self.start_stack <= end else "  [ anon ]"
        name = raw.translate(_CLEAN_TABLE)
        if major == 0 and minor == self.shm_minor and b"/SYSV" in name:
            return f"  [ shmid=0x{inode:x} ]"
        shown = self.files.get(raw)
        if shown is None:
            shown = self.files[raw] = _text(name[name.find(b"/") :] if self.show_path else name[name.rfind(b"/") + 1 :])
        return shown


def display_name(m: Mapping, snap: Snapshot, show_path: bool = False) -> str:
    """The Mapping column of pmap's default, -x and -d listings."""
    return _Names(snap, show_path)(m._parsed())


_MODES = {perms: mode(perms) for perms in (f"{r}{w}{x}{s}" for r in "-r" for w in "-w" for x in "-x" for s in "-sp")}


def _headers(mappings: Sequence[Mapping], rng: tuple[int, int]) -> Iterator[tuple[Mapping, _smaps.HeaderFields, bool]]:
    """(mapping, its header, shown) for every mapping pmap reads: those before the range are read
    but not shown, and reading stops at the first mapping past it."""
    low, high = rng
    run = None
    headers: list[_smaps.HeaderFields] = []
    for m in mappings:
        if m._run is not run:
            run = m._run
            headers = run.headers()
        header = headers[m._i]
        if header[0] > high:
            return
        yield m, header, header[1] - 1 >= low


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
    if fmt not in FORMATS:
        raise PmapError(f"unknown pmap format {fmt!r}: use one of {', '.join(FORMATS)}")
    lines = [header_line(snap, utf8)]
    rng = range or FULL_RANGE
    if fmt in ("x", "X", "XX") and not snap.detail and snap.mappings:
        raise PmapError(
            f"PID {snap.pid}: this snapshot was taken with detail=False (maps only); "
            f"pmap -{fmt} needs smaps: take it with detail=True"
        )
    if fmt == "default":
        _default(snap, rng, quiet, show_path, lines)
    elif fmt == "d":
        _device(snap, rng, quiet, show_path, lines)
    elif fmt == "x":
        _extended(snap, rng, quiet, show_path, lines)
    else:
        _smaps_table(snap, fmt == "XX", quiet, show_path, lines)
    return "\n".join(lines) + "\n"


def _default(snap: Snapshot, rng: tuple[int, int], quiet: bool, show_path: bool, lines: list[str]) -> None:
    total = 0
    name = _Names(snap, show_path)
    for _, header, shown in _headers(snap.mappings, rng):
        if shown:
            start, end, perms = header[:3]
            total += end - start
            lines.append("%016x %6dK %s %s" % (start, (end - start) >> 10, _MODES[perms], name(header)))
    if not quiet:
        lines.append(f" total {total >> 10:16d}K")


def _device(snap: Snapshot, rng: tuple[int, int], quiet: bool, show_path: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'Mode':<5} {'Offset':<16} {'Device':<9} Mapping")
    name = _Names(snap, show_path)
    shown = []
    for m, header, in_range in _headers(snap.mappings, rng):
        if in_range:
            start, end, perms, offset, major, minor = header[:6]
            lines.append(
                "%016x %7d %s %016x %03x:%05x %s"
                % (start, (end - start) >> 10, _MODES[perms], offset, major, minor, name(header))
            )
            shown.append(m)
    if not quiet:
        mapped, writeable, shared = mode_totals(shown)
        lines.append(f"mapped: {mapped >> 10}K    writeable/private: {writeable >> 10}K    shared: {shared >> 10}K")


def _extended(snap: Snapshot, rng: tuple[int, int], quiet: bool, show_path: bool, lines: list[str]) -> None:
    if not quiet:
        lines.append(f"{'Address':<16} {'Kbytes':>7} {'RSS':>7} {'Dirty':>7} {'Mode':<5} Mapping")
    total = total_rss = total_dirty = 0
    name = _Names(snap, show_path)
    run = None
    for m, header, shown in _headers(snap.mappings, rng):
        if m._run is not run:  # read the columns once per run
            run = m._run
            rss_kb, shared_dirty, private_dirty, swap = (
                run.numbers(key) for key in (b"\nRss:", b"\nShared_Dirty:", b"\nPrivate_Dirty:", b"\nSwap:")
            )
        i = m._i
        rss = (rss_kb[i] or 0) >> 10
        dirty = ((shared_dirty[i] or 0) >> 10) + ((private_dirty[i] or 0) >> 10)
        total_rss += rss
        total_dirty += dirty
        if not shown or swap[i] is None:  # pmap prints a row when it reads the `Swap:` line
            continue
        start, end, perms = header[:3]
        total += end - start
        lines.append("%016x %7d %7d %7d %5s %s" % (start, (end - start) >> 10, rss, dirty, _MODES[perms], name(header)))
    if not quiet:
        lines.append("---------------- ------- ------- ------- ")
        lines.append(f"{'total kB':<16} {total >> 10:7d} {total_rss:7d} {total_dirty:7d}")


def _smaps_table(snap: Snapshot, everything: bool, quiet: bool, show_path: bool, lines: list[str]) -> None:
    if not snap.mappings:
        return
    rows = []
    field_names: Optional[list[bytes]] = None
    for m in snap.mappings:
        run, i = m._run, m._i
        body = run.text[run.nls[i] : run.ends[i]]
        values = _smaps.numeric_fields(body)
        names = [name for name, _ in values]
        if field_names is None:
            field_names = names
        elif names != field_names:
            raise PmapError(f"PID {snap.pid}: inconsistent detail field in smaps file, line: {_text(m.header_line)}")
        fixed = m.header_line.split(None, 5)
        if len(fixed) < 5:
            raise PmapError(f"PID {snap.pid}: Unknown format in smaps file: {_text(m.header_line)}")
        name = (fixed[5].lstrip() if len(fixed) > 5 else b"")[:127]
        if not show_path:
            name = name[name.rfind(b"/") + 1 :]
        start = fixed[0].split(b"-", 1)[0]
        flags = _smaps.text_at(body, b"\nVmFlags:", 0, len(body))
        rows.append(([start] + fixed[1:5], [int(v) for _, v in values], flags, name))
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
