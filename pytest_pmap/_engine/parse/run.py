"""`Run`: the mapping blocks of one text buffer, by position, parsed column by column.

A process can have tens of thousands of mappings, so nothing here walks lines in Python: a run's
header lines are split and checked in C-level passes over all of them at once
(`Run.header_columns()`), and a field is read at the same offset in every block
(`Run.numbers(key)`), each offset checked.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

from ...errors import SmapsParseError, hide_from_tracebacks
from ...size import Size
from .fields import HEADER, KB_END, HeaderFields, not_a_header, number_at, parse_fields
from .sections import Sections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from .fields import FieldValue

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["HeaderColumns", "Run"]

_HEX = b"0123456789abcdef"
_PERMS = frozenset(f"{r}{w}{x}{s}".encode() for r in "-r" for w in "-w" for x in "-x" for s in "-sp")
_FIRST, _SECOND, _THIRD, _FOURTH, _FIFTH = map(itemgetter, range(5))


class HeaderColumns:
    """The header lines of a run, parsed column by column, for every block at once.

    Addresses, permissions and names (what every listing shows) are parsed with the columns;
    offsets, devices and inodes (which only some need) when first asked for, by `ids()`. The
    lines have been checked whole, so nothing is left to fail later.
    """

    __slots__ = ("_ids", "_parts", "ends", "names", "perms", "start_texts", "starts")

    def __init__(self, starts: list[int], ends: list[int], perms: list[str], names: list[bytes],
                 start_texts: list[str], parts: list[list[bytes]]) -> None:
        self.starts = starts
        self.ends = ends
        self.perms = perms
        """As the kernel writes them: `rw-p`."""
        self.names = names
        """The path or `[name]` after the inode, raw; empty for an anonymous mapping."""
        self.start_texts = start_texts
        """The start addresses as written: lowercase hex, zero-padded to 8 digits by the kernel."""
        self._parts = parts
        """Each line split at its first five spaces."""
        self._ids: list[list[int]] = []

    @classmethod
    def parse(cls, lines: list[bytes]) -> Optional[HeaderColumns]:
        """The columns of these header lines; None when some line is not one.

        A header line is `start-end perms offset major:minor inode`, one space apart (numbers in
        lowercase hex, the inode in decimal), then spaces and the name, if any: what `HEADER`
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

    def texts(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """Every block's offset, device and inode as the kernel writes them (`00000000`, `fe:00`, `4242`)."""
        parts = self._parts
        return list(map(_THIRD, parts)), list(map(_FOURTH, parts)), list(map(_FIFTH, parts))

    def raw_names(self) -> list[bytes]:
        """Every block's header line after the inode: the padding and the name, as written."""
        return [p[5] if len(p) == 6 else b"" for p in self._parts]

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



class Run:
    """The mapping blocks of one text buffer, by position.

    Block i's header line is `text[heads[i]:nls[i]]` and its field lines are
    `text[nls[i] + 1:ends[i]]` (empty for a line of `maps`). Columns are parsed for every
    block at once, the first time they are asked for, and kept.
    """

    __slots__ = ("_headers", "_parsed", "columns", "ends", "first_line", "heads", "nls", "sections", "text")

    def __init__(self, text: bytes, heads: list[int], nls: list[int], ends: list[int], first_line: int = 1,
                 sections: Optional[Sections] = None) -> None:
        self.text = text
        self.heads = heads
        self.nls = nls
        """Where each header line's newline is (or would be, on a last line without one)."""
        self.ends = ends
        self.first_line = first_line
        """The line number, in the whole file, of the first line of `text` (for error messages)."""
        self.sections = sections
        """The field lines of every block, cut out once, when the run has the kernel's layout."""
        self.columns: dict[bytes, list[Optional[Size]]] = {}
        """The `numbers()` read so far, by key."""
        self._parsed: list[HeaderColumns] = []
        self._headers: list[HeaderFields] = []

    def __repr__(self) -> str:
        return f"<Run of {len(self.heads)} blocks from line {self.first_line}>"

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
                i = next(i for i, line in enumerate(lines) if not HEADER.fullmatch(line))
                raise not_a_header(lines[i], self.line_number(i))
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
            sections = self.sections
            if sections is not None and sections.has(key):
                column = sections.column(key)
            else:
                column = _number_column(self, key)
            self.columns[key] = column
        return column

    def total(self, key: bytes, first: int = 0, stop: Optional[int] = None) -> Optional[int]:
        """The sum of the `key` field over blocks first..stop-1 (all by default); None when none
        of them has it. A run of the kernel's layout sums each distinct text of its blocks once."""
        stop = len(self) if stop is None else stop
        sections = self.sections
        if sections is not None and sections.has(key):
            return sections.total(key, first, stop)
        present = [int(v) for v in self.numbers(key)[first:stop] if v is not None]
        return sum(present) if present else None


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
        stop = text.find(KB_END, at, ends[0]) if at >= 0 else -1
        if stop >= 0:
            a, b = at - nls[0], stop + len(KB_END) - nls[0]
            cuts = [text[nl + a : nl + b] for nl in nls]
            values = {cut: _kb_value(cut, key) for cut in set(cuts)}
            if all(value is not None for value in values.values()):
                return list(map(values.__getitem__, cuts))
    return list(map(number_at, repeat(text), repeat(key), nls, ends))


def _kb_value(cut: bytes, key: bytes) -> Optional[Size]:
    """The size on one `key` line cut out whole (`b"\\nRss:     4 kB\\n"`), or None if it is not one."""
    digits = cut[len(key) : -len(KB_END)].lstrip(b" \t")
    if cut.startswith(key) and cut.endswith(KB_END) and digits.isdigit():
        return Size.of(int(digits) << 10)
    return None


