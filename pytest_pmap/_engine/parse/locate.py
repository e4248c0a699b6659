"""Finding the mapping blocks in maps and smaps text, as `Run`s.

The kernel writes smaps as one header line per mapping followed by the same `Key:   value` lines
for every mapping, each `kB` line padded to a fixed width, VmFlags last. `locate_smaps` walks from
block to block with two newline searches each (the lines between the header and VmFlags have the
same width in every block) and checks them all at once with C-level `map` calls. Blocks of other
widths (a 9-digit size) are walked line count by line count; text of another layout (other
kernels, hand-written files) is checked line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import add

from ...errors import SmapsParseError, hide_from_tracebacks
from .fields import FIELD_LINE, HEADER, HEADER_LINE, LAST_KEY, shown
from .run import Run
from .sections import Sections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["locate_maps", "locate_smaps"]


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


class _Layout:
    """What every block of a kernel-written smaps shares, taken from the first block."""

    __slots__ = ("first_end", "first_key", "fixed", "lines")

    def __init__(self, first_key: bytes, fixed: int, first_end: int, lines: int) -> None:
        self.first_key = first_key
        """The first field line's key, after the header's newline: `b"\\nSize:"`."""
        self.fixed = fixed
        """Bytes from the header line's newline to the newline before the `VmFlags:` line."""
        self.first_end = first_end
        """Bytes from the header line's newline to the first field line's newline."""
        self.lines = lines
        """Field lines per block, VmFlags included."""

    @classmethod
    def of(cls, text: bytes) -> Optional[_Layout]:
        """The layout of text's first block; None while it is incomplete or when it has none."""
        nl = text.find(b"\n")
        colon = text.find(b":", nl) if nl >= 0 else -1
        last = text.find(b"\n" + LAST_KEY, nl) if nl >= 0 else -1
        block_end = text.find(b"\n", last + 1) if last >= 0 else -1
        if block_end < 0 or not nl < colon < last or b"\n" in text[nl + 1 : colon]:
            return None
        first_end = text.find(b"\n", colon)
        return cls(text[nl : colon + 1], last - nl, first_end - nl, text.count(b"\n", nl + 1, block_end + 1))


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
    if not all(map(text.startswith, repeat(LAST_KEY), lasts)):
        if lasts and not all(map(text.startswith, repeat(LAST_KEY), lasts[:-1])):
            return _walk_slowly(text, layout, first_line)
        if nls:  # the last block goes on in the next chunk
            del nls[-1], ends[-1]
    if not nls:
        return Run(text, [], [], []), 0
    if not all(map(text.startswith, repeat(layout.first_key), nls)):
        return _walk_slowly(text, layout, first_line)
    # The field lines after the first are cut out now, while this part of the file is in the CPU's
    # cache: every field and total read later is a lookup (see `Sections`).
    sections = Sections.cut(text, nls, layout.first_end, layout.fixed, layout.lines - 2)
    return Run(text, [0, *ends[:-1]], nls, ends, first_line, sections), ends[-1]


def _walk_slowly(text: bytes, layout: _Layout, first_line: int) -> Optional[tuple[Run, int]]:
    """`_fast_run` for blocks of any width: each must have the first block's first key and
    number of lines, VmFlags last. None when one does not."""
    heads: list[int] = []
    nls: list[int] = []
    ends: list[int] = []
    head = 0
    while True:
        nl = text.find(b"\n", head)
        last = text.find(b"\n" + LAST_KEY, nl) if nl >= 0 else -1
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
    heads = [m.start() for m in HEADER_LINE.finditer(text) if HEADER.fullmatch(m.group())]
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
            if line and not FIELD_LINE.fullmatch(line):
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
