"""The parser: maps / smaps bytes in, runs of mapping blocks out. Pure: no file is opened here.

The kernel writes smaps as one header line per mapping followed by the same `Key:   value` lines
for every mapping, each `kB` line padded to a fixed width, VmFlags last. A process can have tens
of thousands of mappings, so the parser never walks lines in Python:

- `locate_smaps` walks from block to block with two newline searches each (the lines between
  the header and VmFlags have the same width in every block) and checks them all at once with
  C-level `map` calls. Blocks of other widths (a 9-digit size) are walked line count by line
  count; text of another layout (other kernels, hand-written files) is checked line by line.
- A `Run` is the blocks of one text buffer, by position. Its columns are parsed when first asked
  for, for every block at once: `Run.header_columns()` (each line split at its first five
  spaces, then every column checked and converted in C-level passes) and `Run.numbers(key)` (a
  field read at the same offset in every block, each offset checked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, itemgetter
from typing import Optional, Union

from .errors import SmapsParseError, hide_from_tracebacks
from .size import Size

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = [
    "FieldValue",
    "HeaderColumns",
    "HeaderFields",
    "Run",
    "locate_maps",
    "locate_smaps",
    "number_at",
    "numeric_fields",
    "parse_fields",
    "parse_header",
    "parse_rollup",
    "text_at",
]

#: A field's value: bytes for `kB` fields, a bare integer (THPeligible), or text (VmFlags).
FieldValue = Union[int, str]
#: start, end, perms, offset, major, minor, inode, name (raw bytes, possibly empty)
HeaderFields = tuple[int, int, str, int, int, int, int, bytes]

_HEADER = re.compile(
    rb"([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][-sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) ([0-9]+)(?: +(.*))?",
    re.S,
)
_HEADER_LINE = re.compile(rb"^[0-9a-f]+-[0-9a-f]+ [^\n]*$", re.M)
_FIELD_LINE = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*):[ \t]*([^\n]*)")
_KB_END = b" kB\n"
_LAST_KEY = b"VmFlags:"


def shown(line: bytes) -> str:
    """A line as an error message quotes it: at most 200 bytes, and its length when longer."""
    return repr(line) if len(line) <= 200 else f"{line[:200]!r}... ({len(line)} bytes)"


def parse_header(line: bytes, number: int = 0) -> HeaderFields:
    """Split a maps/smaps header line into its fields; raise `SmapsParseError` naming the line
    (and its `number` in the file, when given)."""
    match = _HEADER.fullmatch(line)
    if match is None:
        raise _not_a_header(line, number)
    start, end, perms, offset, major, minor, inode, name = match.groups(b"")
    return (
        int(start, 16), int(end, 16), perms.decode(), int(offset, 16),
        int(major, 16), int(minor, 16), int(inode), name,
    )


def _not_a_header(line: bytes, number: int = 0) -> SmapsParseError:
    where = f"line {number} is" if number else "this is"
    return SmapsParseError(f"{where} not a mapping line: {shown(line)}")


def parse_value(raw: bytes) -> FieldValue:
    """One field's value: `8 kB` gives 8192 (bytes), `0` gives 0, anything else stays text."""
    raw = raw.strip()
    if raw.endswith(b" kB") and raw[:-3].isdigit():
        return int(raw[:-3]) << 10
    if raw.isdigit():
        return int(raw)
    return raw.decode("utf-8", "surrogateescape")


def parse_fields(body: bytes, first_line: int = 0) -> dict[str, FieldValue]:
    """All `Key: value` lines of one mapping (or of smaps_rollup), in the kernel's order.

    Unknown keys are kept, whatever their value looks like; a line that is not a `Key: value` line
    raises `SmapsParseError` naming it (with its number, when `first_line` says where body starts).
    """
    out: dict[str, FieldValue] = {}
    for number, line in enumerate(body.split(b"\n"), first_line):
        if not line:
            continue
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            where = f"line {number} is" if first_line else "this is"
            raise SmapsParseError(f"{where} not a 'Key: value' line: {shown(line)}")
        out[match.group(1).decode("ascii")] = parse_value(match.group(2))
    return out


def parse_rollup(text: bytes) -> dict[str, FieldValue]:
    """The fields of `/proc/PID/smaps_rollup` (its first line is a header spanning the whole map)."""
    first, _, body = text.partition(b"\n")
    if not _HEADER.fullmatch(first):
        raise SmapsParseError(f"smaps_rollup does not start with a mapping line: {shown(first)}")
    return parse_fields(body, 2)


def number_at(text: bytes, key: bytes, nl: int, end: int) -> Optional[Size]:
    """The field on the `key` line (`b"\\nRss:"`) of the block whose header ends at `nl`.

    `kB` fields come back in bytes, bare numbers as they are; None when the block has no such
    line or its value is not a number.
    """
    at = text.find(key, nl, end)
    if at < 0:
        return None
    at += len(key)
    nl = text.find(b"\n", at, end)
    line = text[at : nl if nl >= 0 else end].strip()
    if line.endswith(b" kB") and line[:-3].isdigit():
        return Size.of(int(line[:-3]) << 10)
    return Size.of(int(line)) if line.isdigit() else None


@dataclass(frozen=True, eq=False)
class HeaderColumns:
    """The header lines of a run, parsed column by column, for every block at once.

    Addresses, permissions and names (what every listing shows) are parsed with the columns;
    offsets, devices and inodes (which only some need) when first asked for, by `ids()`. The
    lines have been checked whole, so nothing is left to fail later.
    """

    starts: list[int]
    ends: list[int]
    perms: list[str]
    """As the kernel writes them: `rw-p`."""
    names: list[bytes]
    """The path or `[name]` after the inode, raw; empty for an anonymous mapping."""
    start_texts: list[str]
    """The start addresses as written: lowercase hex, zero-padded to 8 digits by the kernel."""
    _parts: list[list[bytes]] = field(repr=False)
    """Each line split at its first five spaces."""
    _ids: list[list[int]] = field(default_factory=list, repr=False)

    @classmethod
    def parse(cls, lines: list[bytes]) -> Optional[HeaderColumns]:
        """The columns of these header lines; None when some line is not one.

        A header line is `start-end perms offset major:minor inode`, one space apart (numbers in
        lowercase hex, the inode in decimal), then spaces and the name, if any: what `_HEADER`
        takes. Each line is split at its first five spaces, and every condition is then checked
        for all lines at once, in C-level passes over the columns.
        """
        parts = list(map(bytes.split, lines, repeat(b" "), repeat(5)))
        if not parts:
            return cls([], [], [], [], [], [])
        if min(map(len, parts)) < 5:
            return None
        perms = list(map(_SECOND, parts))
        offsets, inodes = list(map(_THIRD, parts)), list(map(_FIFTH, parts))
        addresses = _pairs(list(map(_FIRST, parts)), b"-")
        if (
            addresses is None
            or not _PERMS.issuperset(perms)
            or not all(offsets) or b"".join(offsets).translate(None, _HEX)
            or not all(inodes) or not b"".join(inodes).isdigit()
            or _pairs(list(map(_FOURTH, parts)), b":") is None
        ):
            return None
        as_text = {p: p.decode() for p in set(perms)}
        names = [p[5] if len(p) == 6 else b"" for p in parts]
        unpadded = {name: name.lstrip(b" ") for name in set(names)}
        start_texts = addresses[0::2]
        return cls(
            list(map(int, start_texts, repeat(16))),
            list(map(int, addresses[1::2], repeat(16))),
            list(map(as_text.__getitem__, perms)),
            list(map(unpadded.__getitem__, names)),
            start_texts,
            parts,
        )

    def ids(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """Every block's offset, device major and minor, and inode, parsed on the first call."""
        if not self._ids:
            parts = self._parts
            devices = _split_pairs(b" ".join(map(_FOURTH, parts)), b":")
            self._ids.extend((
                list(map(int, map(_THIRD, parts), repeat(16))),
                list(map(int, devices[0::2], repeat(16))),
                list(map(int, devices[1::2], repeat(16))),
                list(map(int, map(_FIFTH, parts))),
            ))
        offsets, majors, minors, inodes = self._ids
        return offsets, majors, minors, inodes


def _pairs(texts: list[bytes], separator: bytes) -> Optional[list[str]]:
    """`_split_pairs`, or None unless every text is two hex numbers with the separator between."""
    joined = b" ".join(texts)
    if joined.translate(None, _HEX) != b" ".join(repeat(separator, len(texts))):
        return None  # not one separator in each text, and only hex digits around it
    numbers = _split_pairs(joined, separator)
    return numbers if len(numbers) == 2 * len(texts) else None  # a number on either side


def _split_pairs(joined: bytes, separator: bytes) -> list[str]:
    """The two numbers of each of the space-separated `a-b` texts (for separator `-`), as text,
    one after the other."""
    return joined.replace(separator, b" ").decode("ascii").split()


_HEX = b"0123456789abcdef"
_PERMS = frozenset(f"{r}{w}{x}{s}".encode() for r in "-r" for w in "-w" for x in "-x" for s in "-sp")
_FIRST, _SECOND, _THIRD, _FOURTH, _FIFTH = map(itemgetter, range(5))


@dataclass(frozen=True, eq=False)
class Run:
    """The mapping blocks of one text buffer, by position.

    Block i's header line is `text[heads[i]:nls[i]]` and its field lines are
    `text[nls[i] + 1:ends[i]]` (empty for a line of `maps`). Columns are parsed for every
    block at once, the first time they are asked for, and kept.
    """

    text: bytes
    heads: list[int]
    nls: list[int]
    """Where each header line's newline is (or would be, on a last line without one)."""
    ends: list[int]
    first_line: int = 1
    """The line number, in the whole file, of the first line of `text` (for error messages)."""
    columns: dict[bytes, list[Optional[Size]]] = field(default_factory=dict, repr=False)
    """The `numbers()` read so far, by key."""
    _parsed: list[HeaderColumns] = field(default_factory=list, repr=False)
    _headers: list[HeaderFields] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.heads)

    def header_line(self, i: int) -> bytes:
        """Block i's header line, without its newline."""
        return self.text[self.heads[i] : self.nls[i]]

    def body(self, i: int) -> bytes:
        """Block i's field lines, as the kernel wrote them."""
        return self.text[self.nls[i] + 1 : self.ends[i]]

    def line_number(self, i: int) -> int:
        """The line number of block i's header line in the whole file."""
        return self.first_line + self.text.count(b"\n", 0, self.heads[i])

    def fields(self, i: int) -> dict[str, FieldValue]:
        """Block i's fields, by `parse_fields`."""
        body = self.body(i)
        try:
            return parse_fields(body)
        except SmapsParseError:
            return parse_fields(body, self.line_number(i) + 1)  # raises again, naming the line

    def header_columns(self) -> HeaderColumns:
        """Every block's header, column by column; a line that is not a header raises
        `SmapsParseError` naming it."""
        if not self._parsed:
            text = self.text
            lines = [text[head:nl] for head, nl in zip(self.heads, self.nls)]
            columns = HeaderColumns.parse(lines)
            if columns is None:  # name the first line the pattern did not take
                i = next(i for i, line in enumerate(lines) if not _HEADER.fullmatch(line))
                raise _not_a_header(lines[i], self.line_number(i))
            self._parsed.append(columns)
        return self._parsed[0]

    def headers(self) -> list[HeaderFields]:
        """Every block's header as one tuple; a line that is not one raises `SmapsParseError` naming it."""
        if not self._headers and self.heads:
            c = self.header_columns()
            self._headers.extend(zip(c.starts, c.ends, c.perms, *c.ids(), c.names))
        return self._headers

    def numbers(self, key: bytes) -> list[Optional[Size]]:
        """Every block's value of the `key` field (`b"\\nRss:"`), as `number_at` reads it."""
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = _number_column(self, key)
        return column


def _number_column(run: Run, key: bytes) -> list[Optional[Size]]:
    """One field of every block.

    The kernel pads `kB` lines to a fixed width, so when the first block has the `key` line,
    every block's line is cut at the same offset, ` kB\\n` included; the few distinct cuts are
    each checked and parsed once, and the column is a lookup of each block's cut. When any cut
    is not the `key` line of a plain number, every block is read on its own (`number_at`).
    """
    text, nls, ends = run.text, run.nls, run.ends
    if nls:
        at = text.find(key, nls[0], ends[0])
        stop = text.find(_KB_END, at, ends[0]) if at >= 0 else -1
        if stop >= 0:
            a, b = at - nls[0], stop + len(_KB_END) - nls[0]
            cuts = [text[nl + a : nl + b] for nl in nls]
            values = {cut: _kb_value(cut, key) for cut in set(cuts)}
            if all(value is not None for value in values.values()):
                return list(map(values.__getitem__, cuts))
    return list(map(number_at, repeat(text), repeat(key), nls, ends))


def _kb_value(cut: bytes, key: bytes) -> Optional[Size]:
    """The size on one `key` line cut out whole (`b"\\nRss:     4 kB\\n"`), or None if it is not one."""
    digits = cut[len(key) : -len(_KB_END)].lstrip(b" \t")
    if cut.startswith(key) and cut.endswith(_KB_END) and digits.isdigit():
        return Size.of(int(digits) << 10)
    return None


def locate_maps(text: bytes) -> list[Run]:
    """The lines of `/proc/PID/maps` as one run of blocks without fields."""
    lines = text.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    heads: list[int] = []
    nls: list[int] = []
    pos = 0
    for line in lines:
        if line:
            heads.append(pos)
            nls.append(pos + len(line))
        pos += len(line) + 1
    return [Run(text, heads, nls, [min(nl + 1, len(text)) for nl in nls])] if heads else []


@dataclass(frozen=True)
class _Layout:
    """What every block of a kernel-written smaps shares, taken from the first block."""

    first_key: bytes
    """The first field line's key, after the header's newline: `b"\\nSize:"`."""
    fixed: int
    """Bytes from the start of the field lines to the `VmFlags:` line."""
    lines: int
    """Field lines per block, VmFlags included."""

    @classmethod
    def of(cls, text: bytes) -> Optional[_Layout]:
        """The layout of text's first block; None while it is incomplete or when it has none."""
        nl = text.find(b"\n")
        colon = text.find(b":", nl) if nl >= 0 else -1
        last = text.find(b"\n" + _LAST_KEY, nl) if nl >= 0 else -1
        block_end = text.find(b"\n", last + 1) if last >= 0 else -1
        if block_end < 0 or not nl < colon < last or b"\n" in text[nl + 1 : colon]:
            return None
        return cls(text[nl : colon + 1], last - nl, text.count(b"\n", nl + 1, block_end + 1))


def locate_smaps(chunks: Iterable[bytes]) -> Iterator[Run]:
    """The mapping blocks of an smaps file that arrives in chunks of any size, as runs, each as
    soon as its chunk is in (so callers can work while the rest is read).

    Each chunk's whole blocks become a run; an incomplete last block is carried into the next.
    Blocks that do not have the kernel's layout send the rest of the text, from the first such
    chunk on, to `_locate_general`, which checks every line and names any it cannot read.
    """
    layout: Optional[_Layout] = None
    carry = b""
    line = 1  # the number of text's first line in the file
    pieces = iter(chunks)
    for chunk in pieces:
        text = carry + chunk if carry else chunk
        if layout is None:
            layout = _Layout.of(text)
            if layout is None and len(text) < 1 << 20:  # the first block is not complete yet
                carry = text
                continue
        found = None if layout is None else _fast_run(text, layout, line)
        if layout is None or found is None:
            yield from _locate_general(text + b"".join(pieces), line)
            return
        run, rest = found
        if run.heads:
            yield run
            line += len(run) * (layout.lines + 1)
        carry = text[rest:]
    if carry:
        yield from _locate_general(carry, line)


def _fast_run(text: bytes, layout: _Layout, first_line: int) -> Optional[tuple[Run, int]]:
    """The whole blocks at the start of `text` and where the rest begins; None when some block
    does not have `layout`.

    Each block is its header line, the fixed-width lines, and the VmFlags line: two newline
    searches per block find it, and two C-level passes check every block's first key and
    VmFlags line. A block that is not that shape (a 9-digit size widens its line) sends the
    text to `_walk_slowly`.
    """
    find = text.find
    skip = layout.fixed + 1
    nls: list[int] = []
    ends: list[int] = []
    add_nl, add_end = nls.append, ends.append
    end = 0
    while True:
        nl = find(b"\n", end)
        last_nl = find(b"\n", nl + skip) if nl >= 0 else -1
        if last_nl < 0:
            break
        add_nl(nl)
        end = last_nl + 1
        add_end(end)
    lasts = list(map(add, nls, repeat(skip)))
    if not all(map(text.startswith, repeat(_LAST_KEY), lasts)):
        if lasts and not all(map(text.startswith, repeat(_LAST_KEY), lasts[:-1])):
            return _walk_slowly(text, layout, first_line)
        if nls:  # the last block goes on in the next chunk
            del nls[-1], ends[-1]
    if not nls:
        return Run(text, [], [], []), 0
    if not all(map(text.startswith, repeat(layout.first_key), nls)):
        return _walk_slowly(text, layout, first_line)
    return Run(text, [0, *ends[:-1]], nls, ends, first_line), ends[-1]


def _walk_slowly(text: bytes, layout: _Layout, first_line: int) -> Optional[tuple[Run, int]]:
    """`_fast_run` for blocks of any width: each must have the first block's first key and
    number of lines, VmFlags last. None when one does not."""
    heads: list[int] = []
    nls: list[int] = []
    ends: list[int] = []
    head = 0
    while True:
        nl = text.find(b"\n", head)
        last = text.find(b"\n" + _LAST_KEY, nl) if nl >= 0 else -1
        end = text.find(b"\n", last + 1) + 1 if last >= 0 else 0
        if end <= 0:
            break
        if not text.startswith(layout.first_key, nl) or text.count(b"\n", nl + 1, end) != layout.lines:
            return None
        heads.append(head)
        nls.append(nl)
        ends.append(end)
        head = end
    return Run(text, heads, nls, ends, first_line), head


def _locate_general(text: bytes, first_line: int = 1) -> list[Run]:
    """Line-by-line locating for text of any layout (whose first line is line `first_line` of
    the file); every line must be a header or a field."""
    heads = [m.start() for m in _HEADER_LINE.finditer(text) if _HEADER.fullmatch(m.group())]
    first = heads[0] if heads else len(text)
    if text[:first].strip():
        _raise_bad_line(text, 0, first, first_line)
    nls: list[int] = []
    ends: list[int] = []
    for i, head in enumerate(heads):
        nl = text.find(b"\n", head)
        nl = len(text) if nl < 0 else nl
        end = heads[i + 1] if i + 1 < len(heads) else len(text)
        for line_start, line in _lines(text, nl + 1, end):
            if line and not _FIELD_LINE.fullmatch(line):
                _raise_bad_line(text, line_start, end, first_line)
        nls.append(nl)
        ends.append(end)
    return [Run(text, heads, nls, ends, first_line)] if heads else []


def _lines(text: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    pos = start
    for line in text[start:end].split(b"\n"):
        yield pos, line
        pos += len(line) + 1


def _raise_bad_line(text: bytes, start: int, end: int, first_line: int) -> None:
    for pos, line in _lines(text, start, end):
        if line.strip():
            number = first_line + text.count(b"\n", 0, pos)
            raise SmapsParseError(f"line {number} is neither a mapping line nor a 'Key: value' line: {shown(line)}")


_NUMERIC_LINE = re.compile(rb"^([^\n:]{1,31}):[ \t]*([0-9]+)(?: kB)?$", re.M)


def numeric_fields(body: bytes) -> list[tuple[bytes, bytes]]:
    """The `Name: number [kB]` lines of one block as printed (numbers as text), in order."""
    return _NUMERIC_LINE.findall(body)


def text_at(text: bytes, key: bytes, start: int, end: int) -> Optional[bytes]:
    """The rest of the `key` line (`b"\\nVmFlags:"`) within text[start:end], stripped; None if absent."""
    at = text.find(key, start, end)
    if at < 0:
        return None
    at += len(key)
    nl = text.find(b"\n", at, end)
    return text[at : nl if nl >= 0 else end].strip()
