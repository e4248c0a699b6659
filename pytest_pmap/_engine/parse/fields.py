"""Parsing the lines of maps, smaps and smaps_rollup: header lines and `Key: value` fields.

Pure: bytes in, values out, no file opened. Unknown fields are kept, whatever they look like.
"""

from __future__ import annotations

import re

from ...errors import SmapsParseError, hide_from_tracebacks
from ...size import Size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    #: A field's value: bytes for `kB` fields, a bare integer (THPeligible), or text (VmFlags).
    FieldValue = Union[int, str]

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = [
    "FieldValue", "HeaderFields", "number_at", "number_of", "numeric_fields", "parse_fields", "parse_header",
    "parse_rollup", "parse_value", "shown", "text_at",
]

#: start, end, perms, offset, major, minor, inode, name (raw bytes, possibly empty)
HeaderFields = tuple[int, int, str, int, int, int, int, bytes]

HEADER = re.compile(
    rb"([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-x][-sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) ([0-9]+)(?: +(.*))?",
    re.S,
)
HEADER_LINE = re.compile(rb"^[0-9a-f]+-[0-9a-f]+ [^\n]*$", re.M)
FIELD_LINE = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*):[ \t]*([^\n]*)")
KB_END = b" kB\n"
_KB_FIELD = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*):[ \t]*([0-9]+) kB[ \t]*$", re.M)
LAST_KEY = b"VmFlags:"


def shown(line: bytes) -> str:
    """A line as an error message quotes it: at most 200 bytes, and its length when longer."""
    return repr(line) if len(line) <= 200 else f"{line[:200]!r}... ({len(line)} bytes)"


def parse_header(line: bytes, number: int = 0) -> HeaderFields:
    """Split a maps/smaps header line into its fields; raise `SmapsParseError` naming the line
    (and its `number` in the file, when given)."""
    match = HEADER.fullmatch(line)
    if match is None:
        raise not_a_header(line, number)
    start, end, perms, offset, major, minor, inode, name = match.groups(b"")
    return (
        int(start, 16), int(end, 16), perms.decode(), int(offset, 16),
        int(major, 16), int(minor, 16), int(inode), name,
    )


def not_a_header(line: bytes, number: int = 0) -> SmapsParseError:
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
        match = FIELD_LINE.fullmatch(line)
        if match is None:
            where = f"line {number} is" if first_line else "this is"
            raise SmapsParseError(f"{where} not a 'Key: value' line: {shown(line)}")
        out[match.group(1).decode("ascii")] = parse_value(match.group(2))
    return out


def parse_rollup(text: bytes) -> dict[str, FieldValue]:
    """The fields of `/proc/PID/smaps_rollup` (its first line is a header spanning the whole map)."""
    first, _, body = text.partition(b"\n")
    if not HEADER.fullmatch(first):
        raise SmapsParseError(f"smaps_rollup does not start with a mapping line: {shown(first)}")
    lines = body.count(b"\n") + (not body.endswith(b"\n") and bool(body))
    words = body.split()
    keys = tuple(words[0::3])
    names = _ROLLUP_NAMES.get(keys)
    if (names is not None and len(words) == 3 * lines and words[2::3].count(b"kB") == lines
            and b"".join(words[1::3]).isdigit()):
        # every line `Key:  N kB`, the keys this kernel always writes: split once, names decoded once
        return dict(zip(names, [int(kb) << 10 for kb in words[1::3]]))
    sizes = _KB_FIELD.findall(body)  # every line a `Key:  N kB` one, as the kernel writes them all: one pass
    if len(sizes) == lines:
        if len(words) == 3 * lines:
            _ROLLUP_NAMES[keys] = tuple(key.decode("ascii") for key, _ in sizes)
        return {key.decode("ascii"): int(kb) << 10 for key, kb in sizes}
    return parse_fields(body, 2)


_ROLLUP_NAMES: dict[tuple[bytes, ...], tuple[str, ...]] = {}
"""The names of smaps_rollup's lines by their keys as written (`b"Rss:"`): one entry a kernel."""


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
    return number_of(text[at : nl if nl >= 0 else end])


def number_of(value: bytes) -> Optional[Size]:
    """A field's value as `number_at` reads it: `8 kB` in bytes, `0` as it is, None for anything else."""
    value = value.strip()
    if value.endswith(b" kB") and value[:-3].isdigit():
        return Size.of(int(value[:-3]) << 10)
    return Size.of(int(value)) if value.isdigit() else None


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


def __getattr__(name: str) -> object:
    # `FieldValue` is for annotations; it exists at run time only when asked for, so that importing
    # this module does not import `typing` (the `pytest-pmap` command must start fast).
    if name == "FieldValue":
        from typing import Union

        return Union[int, str]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
