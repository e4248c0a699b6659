"""Finding the mapping blocks in maps and smaps text, as `Run`s.

The kernel writes smaps as one header line per mapping followed by the same `Key:   value` lines
for every mapping, each `kB` line padded to a fixed width, VmFlags last. `locate_smaps` takes
every block of a chunk with one C-level `findall` of the first block's shape (the lines between
the header and VmFlags have the same width in every block) and checks that the blocks found follow
one another. Blocks of other widths (a 9-digit size) are walked line count by line count; text of
another layout (other kernels, hand-written files) is checked line by line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import accumulate, repeat
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
    """The lines of `/proc/PID/maps` as one run of blocks without fields.

    Each line is a block: where the lines start and end comes from their lengths, in C-level
    passes (a process can have tens of thousands of mappings, and a tree of processes is read
    whole); blank lines, which the kernel never writes, are dropped on a slower path.
    """
    lines = text.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if not lines:
        return []
    if not all(lines):
        return _locate_lines(text, lines)
    lengths = list(map(len, lines))
    ends = list(accumulate(map(add, lengths, repeat(1))))
    heads = [0, *ends[:-1]]
    ends[-1] = min(ends[-1], len(text))  # the last line may lack its newline
    return [Run(text, heads, list(map(add, heads, lengths)), ends)]


def _locate_lines(text: bytes, lines: list[bytes]) -> list[Run]:
    """`locate_maps` for text with blank lines among its lines: each line found on its own."""
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

    __slots__ = ("block", "first_end", "first_key", "fixed", "lines")

    def __init__(self, first_key: bytes, fixed: int, first_end: int, lines: int) -> None:
        self.first_key = first_key
        """The first field line's key, after the header's newline: `b"\\nSize:"`."""
        self.fixed = fixed
        """Bytes from the header line's newline to the newline before the `VmFlags:` line."""
        self.first_end = first_end
        """Bytes from the header line's newline to the first field line's newline."""
        self.lines = lines
        """Field lines per block, VmFlags included."""
        self.block = _block_pattern(first_key, first_end - 2 - len(first_key), fixed - first_end + 2)
        """A block of this layout: its header line, the cut `Sections` keeps (the last two bytes of
        the first field line to the newline before VmFlags), and its VmFlags line; None when the
        first field line is too short to hold a cut."""

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


def _block_pattern(first_key: bytes, skip: int, cut: int) -> Optional[re.Pattern[bytes]]:
    """A block whose first field line's key is `first_key`, `skip` bytes after it the `cut` bytes
    `Sections` keeps, then the VmFlags line; None when `skip` is negative. Compiled once a layout
    (a tree of processes has one for all)."""
    key = (first_key, skip, cut)
    if key not in _BLOCKS:
        _BLOCKS[key] = None if skip < 0 else re.compile(
            rb"(?s)([^\n]*)\n" + re.escape(first_key[1:]) + rb".{%d}(.{%d})\n(" % (skip, cut)
            + re.escape(LAST_KEY) + rb"[^\n]*)\n"
        )
    return _BLOCKS[key]


_BLOCKS: dict[tuple[bytes, int, int], Optional[re.Pattern[bytes]]] = {}


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

    Each block is its header line, the fixed-width lines, and the VmFlags line: one C-level
    `findall` of `layout.block` takes every block's header, cut and VmFlags line, and their
    lengths give where each block starts and ends. `findall` skips what it cannot take, so the
    blocks found are checked to follow one another from the start of the text to the end of its
    last whole block (their lengths add up to it exactly); text where they do not (a 9-digit size
    widens a line) goes to `_walk_slowly`.
    """
    if layout.block is None:
        return _walk_slowly(text, layout, first_line)
    whole = _end_of_whole_blocks(text)
    found = layout.block.findall(text, 0, whole)
    if not found:
        return (Run(text, [], [], []), 0) if whole == 0 else _walk_slowly(text, layout, first_line)
    headers, cuts, flags = zip(*found)
    header_lengths = list(map(len, headers))
    per_block = layout.fixed + 2  # the header's newline and VmFlags' line are counted apart
    ends = list(map(add, accumulate(map(add, header_lengths, map(len, flags))),
                    range(per_block, per_block * len(found) + 1, per_block)))
    if ends[-1] != whole:  # some block was skipped: not every block has this layout
        return _walk_slowly(text, layout, first_line)
    heads = [0, *ends[:-1]]
    # The field lines after the first are cut out now, while this part of the file is in the CPU's
    # cache: every field and total read later is a lookup (see `Sections`).
    sections = Sections.of(list(cuts), layout.first_end, layout.fixed, layout.lines - 2)
    return Run(text, heads, list(map(add, heads, header_lengths)), ends, first_line, sections), whole


def _end_of_whole_blocks(text: bytes) -> int:
    """Where the text's last whole block ends: after the newline of its last complete VmFlags line
    (0 when it has none)."""
    last = text.rfind(b"\n" + LAST_KEY)
    while last >= 0:
        end = text.find(b"\n", last + 1)
        if end >= 0:
            return end + 1
        last = text.rfind(b"\n" + LAST_KEY, 0, last)
    return 0


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
