"""The parser: maps / smaps bytes in, mapping records out. Pure: no file is opened here.

The kernel writes smaps as one header line per mapping followed by the same sequence of
`Key:   value` lines for every mapping. A process can have tens of thousands of mappings, so the
parser never walks lines in Python: it finds the blocks with C-level calls (`re.finditer`, `map`,
`bytes.rfind`), checks the layout with one `bytes.count` of newlines, and leaves every header and
field to be parsed when it is asked for (`parse_header`, `parse_fields`, `Mapping.field`). Text that
does not fit the fast layout (other kernels, hand-written files) goes through `_locate_general`,
which checks every line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Optional, TypeVar, Union

from .errors import SmapsParseError

__all__ = [
    "FieldValue",
    "HeaderFields",
    "parse_header",
    "parse_fields",
    "parse_rollup",
    "locate_maps",
    "locate_smaps",
    "numeric_fields",
    "text_at",
]

T = TypeVar("T")
#: Builds one record from (text, header start, body start, end): the header line is
#: `text[head:body-1]` and the field lines are `text[body:end]`.
Make = Callable[[bytes, int, int, int], T]

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


def parse_header(line: bytes) -> HeaderFields:
    """Split a maps/smaps header line into its fields; raise `SmapsParseError` naming the line."""
    try:
        span, perms, offset, device, rest = line.split(b" ", 4)
        start, end = span.split(b"-")
        major, minor = device.split(b":")
        inode, _, name = rest.partition(b" ")
        hex_fields = b"%s %s %s %s %s" % (start, end, offset, major, minor)
        if _HEX.fullmatch(hex_fields) and _PERMS.fullmatch(perms) and inode.isdigit():
            return (
                int(start, 16), int(end, 16), perms.decode(), int(offset, 16),
                int(major, 16), int(minor, 16), int(inode), name.lstrip(b" "),
            )
    except ValueError:
        pass
    raise SmapsParseError(f"not a mapping line: {line[:200]!r}")


_HEX = re.compile(rb"[0-9a-f]+(?: [0-9a-f]+){4}")
_PERMS = re.compile(rb"[-r][-w][-x][-sp]")


def parse_value(raw: bytes) -> FieldValue:
    """One field's value: `8 kB` gives 8192 (bytes), `0` gives 0, anything else stays text."""
    raw = raw.strip()
    if raw.endswith(b" kB") and raw[:-3].isdigit():
        return int(raw[:-3]) << 10
    if raw.isdigit():
        return int(raw)
    return raw.decode("utf-8", "surrogateescape")


def parse_fields(body: bytes) -> dict[str, FieldValue]:
    """All `Key: value` lines of one mapping (or of smaps_rollup), in the kernel's order.

    Unknown keys are kept, whatever their value looks like; lines that are not `Key: value` lines
    raise `SmapsParseError`.
    """
    out: dict[str, FieldValue] = {}
    for line in body.split(b"\n"):
        if not line:
            continue
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            if _HEADER.fullmatch(line):  # the next mapping's header trails a block in fast mode
                break
            raise SmapsParseError(f"not a 'Key: value' line: {line[:200]!r}")
        out[match.group(1).decode("ascii")] = parse_value(match.group(2))
    return out


def parse_rollup(text: bytes) -> dict[str, FieldValue]:
    """The fields of `/proc/PID/smaps_rollup` (its first line is a header spanning the whole map)."""
    first, _, body = text.partition(b"\n")
    if not _HEADER.fullmatch(first):
        raise SmapsParseError(f"smaps_rollup does not start with a mapping line: {first[:200]!r}")
    return parse_fields(body)


def locate_maps(text: bytes, make: Make[T]) -> list[T]:
    """One record per line of `/proc/PID/maps` (records have no fields)."""
    out: list[T] = []
    append = out.append
    find = text.find
    head = 0
    size = len(text)
    while head < size:
        nl = find(b"\n", head)
        if nl < 0:
            nl = size
        if nl > head:
            append(make(text, head, nl + 1, nl + 1))
        head = nl + 1
    return out


def locate_smaps(chunks: Iterable[bytes], make: Make[T]) -> list[T]:
    """One record per mapping of an smaps file that arrives in chunks of any size.

    Fast path: every block starts with the same key as the first one (`Size` on every kernel) and
    has the same number of lines, which a `bytes.count` of newlines confirms. Otherwise the whole
    text is parsed again line by line by `_locate_general`, which names any line it cannot read.
    """
    out: list[T] = []
    consumed: list[tuple[bytes, int]] = []  # the text behind `out`, in order, for the general path
    key = b""
    lines_per_block = 0
    carry = b""
    for chunk in chunks:
        text = carry + chunk if carry else chunk
        if not key:
            key, lines_per_block = _layout(text)
            if not key:  # the first block is not complete yet
                carry = text
                continue
        found = len(out)
        head = _blocks(text, key, make, out)
        if text.count(b"\n", 0, head) != lines_per_block * (len(out) - found):
            return _locate_general(_joined(consumed) + text, make)
        # The kernel hands smaps out in whole records, so a batch usually ends with a whole block:
        # one with exactly the lines of a block, ending in a newline, is complete; keep it now.
        if text.endswith(b"\n") and text.count(b"\n", head) == lines_per_block:
            out.append(make(text, head, text.find(b"\n", head) + 1, len(text)))
            head = len(text)
        consumed.append((text, head))
        carry = text[head:]
    if carry:
        if key and carry.count(b"\n") + (not carry.endswith(b"\n")) == lines_per_block:
            out.append(make(carry, 0, carry.find(b"\n") + 1, len(carry)))
        else:
            return _locate_general(_joined(consumed) + carry, make)
    return out


def _joined(consumed: list[tuple[bytes, int]]) -> bytes:
    return b"".join(text[:head] for text, head in consumed)


def _layout(text: bytes) -> tuple[bytes, int]:
    """The key that opens each block (`b"\\nSize:"`) and the lines per block, from the first block.

    Returns (b"", 0) while the first block is not all in `text`.
    """
    first_nl = text.find(b"\n")
    colon = text.find(b":", first_nl)
    if first_nl < 0 or colon < 0:
        return b"", 0
    key = text[first_nl:colon + 1]
    second = text.find(key, colon)
    if second < 0:
        return b"", 0
    next_head = text.rfind(b"\n", first_nl, second) + 1
    if next_head <= first_nl + 1:
        return b"", 0
    return key, text.count(b"\n", 0, next_head)


def _blocks(text: bytes, key: bytes, make: Make[T], out: list[T]) -> int:
    """Append a record for every complete block of `text`; return where the incomplete rest starts.

    A block ends where the next block's header line starts: the line before the next `key`.
    Everything here runs in C (`finditer`, `map`): a Python loop per block would cost more than
    the kernel's own time to write the text.
    """
    marks = list(map(_match_start, re.finditer(re.escape(key), text)))
    if len(marks) < 2:
        return 0
    heads = [h + 1 for h in map(text.rfind, repeat(b"\n"), repeat(0), marks[1:])]
    starts = [0, *heads[:-1]]
    bodies = [m + 1 for m in marks[:-1]]
    out.extend(map(make, repeat(text), starts, bodies, heads))
    return heads[-1]


_match_start = re.Match.start


def _locate_general(text: bytes, make: Make[T]) -> list[T]:
    """Line-by-line locating for text of any layout; every line must be a header or a field."""
    heads = [m.start() for m in _HEADER_LINE.finditer(text) if _HEADER.fullmatch(m.group())]
    first = heads[0] if heads else len(text)
    if text[:first].strip():
        _raise_bad_line(text, 0, first)
    out: list[T] = []
    for i, head in enumerate(heads):
        nl = text.find(b"\n", head)
        body = len(text) if nl < 0 else nl + 1
        end = heads[i + 1] if i + 1 < len(heads) else len(text)
        for line_start, line in _lines(text, body, end):
            if line and not _FIELD_LINE.fullmatch(line):
                _raise_bad_line(text, line_start, end)
        out.append(make(text, head, body, end))
    return out


def _lines(text: bytes, start: int, end: int) -> Iterable[tuple[int, bytes]]:
    pos = start
    for line in text[start:end].split(b"\n"):
        yield pos, line
        pos += len(line) + 1


def _raise_bad_line(text: bytes, start: int, end: int) -> None:
    for pos, line in _lines(text, start, end):
        if line.strip():
            number = text.count(b"\n", 0, pos) + 1
            raise SmapsParseError(f"line {number} is neither a mapping line nor a 'Key: value' line: {line[:200]!r}")


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
