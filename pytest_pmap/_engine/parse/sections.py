"""`Sections`: the field lines of a run's blocks, each distinct text parsed once.

In smaps as the kernel writes it, every block has the same field lines at the same places, and in a
process with thousands of mappings most blocks repeat another's values: small anonymous regions,
guard pages, a library's pieces. So each block's field lines after the first (`Size:`, which
changes with every mapping's size) up to `VmFlags:` are cut out once, as the run is located and
its text is still in the CPU's cache, and equal cuts are kept as one object. Any field of every
block, and any field's sum over the run, is then a lookup per block, or per distinct text: what
`snapshot()`'s totals, `Mapping.rss` and pmap -x and -X all read.
"""

from __future__ import annotations

from collections import Counter
from itertools import repeat

from ...size import Size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["Sections"]


class Sections:
    """The field lines of every block of a run, between its first field line and `VmFlags:`.

    `of_block[i]` is block i's text (`b"kB\\nKernelPageSize:  4 kB\\n...\\nProtectionKey:  0"`);
    equal texts are one object, so a run of repeated blocks holds each text once.
    """

    __slots__ = ("_counts", "_parsed", "of_block", "start", "stop")

    def __init__(self, of_block: list[bytes], start: int, stop: int) -> None:
        self.of_block = of_block
        self.start = start
        """Where each block's first field line ends (its newline), from the header line's newline."""
        self.stop = stop
        """Where the newline before each block's `VmFlags:` line is, from the header line's newline."""
        self._parsed: dict[bytes, dict[bytes, Optional[Size]]] = {}
        self._counts: Optional[Counter[bytes]] = None

    @classmethod
    def cut(cls, text: bytes, nls: list[int], start: int, stop: int, lines: int) -> Optional[Sections]:
        """Each block's field lines from the end of its first line to the `VmFlags:` line, where nl
        is its header line's newline, the first field line ends at nl + start, VmFlags follows
        nl + stop, and `lines` lines are between; None unless every block is exactly that.

        Each cut starts with the last two bytes of the first line and its newline (`kB\\n`): a
        cut that starts so, and holds `lines` newlines, can only be those lines. So only each
        distinct cut is checked, never each block.
        """
        if start < 2 or not nls:
            return None
        cuts = [text[nl + start - 2 : nl + stop] for nl in nls]
        seen: dict[bytes, bytes] = {}
        of_block = list(map(seen.setdefault, cuts, cuts))
        first = cuts[0][:3]
        if first[2:] != b"\n" or any(not section.startswith(first) or section.count(b"\n") != lines for section in seen):
            return None
        return cls(of_block, start, stop)

    def distinct(self) -> dict[bytes, dict[bytes, Optional[Size]]]:
        """Each distinct text, with its fields: key (`b"\\nRss:"`) -> value, as `number_at` reads it."""
        if not self._parsed:
            self._parsed.update((text, _parse(text)) for text in dict.fromkeys(self.of_block))
        return self._parsed

    def has(self, key: bytes) -> bool:
        """True when some block has the `key` field among these lines."""
        return any(key in fields for fields in self.distinct().values())

    def column(self, key: bytes) -> list[Optional[Size]]:
        """The `key` field of every block (None where a block has no such line)."""
        values = {text: fields.get(key) for text, fields in self.distinct().items()}
        return list(map(values.__getitem__, self.of_block))

    def total(self, key: bytes, first: int, stop: int) -> Optional[int]:
        """The sum of the `key` field over blocks first..stop-1; None when none of them has it."""
        fields = self.distinct()
        if first == 0 and stop == len(self.of_block):
            if self._counts is None:
                self._counts = Counter(self.of_block)
            counted = [(fields[text].get(key), n) for text, n in self._counts.items()]
            present = [int(value) * n for value, n in counted if value is not None]
        else:
            present = [int(v) for v in map(dict.get, map(fields.__getitem__, self.of_block[first:stop]), repeat(key))
                       if v is not None]
        return sum(present) if present else None


def _parse(text: bytes) -> dict[bytes, Optional[Size]]:
    """The fields of one block's lines: `kB` values in bytes, bare numbers as they are, None for
    anything else; the first line of a name wins, as `number_at` finds it."""
    fields: dict[bytes, Optional[Size]] = {}
    for line in text.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        value = value.strip()
        number: Optional[Size] = None
        if value.endswith(b" kB") and value[:-3].isdigit():
            number = Size.of(int(value[:-3]) << 10)
        elif value.isdigit():
            number = Size.of(int(value))
        fields.setdefault(b"\n" + name + b":", number)
    return fields
