"""`Sections`: the field lines of a run's blocks, each distinct text parsed once.

In smaps as the kernel writes it, every block has the same field lines at the same places, and in a
process with thousands of mappings most blocks repeat another's values: small anonymous regions,
guard pages, a library's pieces. So each block's field lines after the first (`Size:`, which
changes with every mapping's size) up to `VmFlags:` are cut out once, as the run is located and
its text is still in the CPU's cache, and equal cuts are kept as one object. A field is then read
once per distinct text, and any field of every block, or its sum over the run, is a lookup per
block, or per distinct text: what `snapshot()`'s totals, `Mapping.rss` and pmap -x and -X read.
"""

from __future__ import annotations

from collections import Counter

from .fields import number_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from ...size import Size

__all__ = ["Sections"]


class Sections:
    """The field lines of every block of a run, between its first field line and `VmFlags:`.

    `of_block[i]` is block i's text (`b"kB\\nKernelPageSize:  4 kB\\n...\\nProtectionKey:  0"`);
    equal texts are one object, so a run of repeated blocks holds each text once.
    """

    __slots__ = ("_counts", "_distinct", "_values", "of_block", "start", "stop")

    def __init__(self, of_block: list[bytes], start: int, stop: int) -> None:
        self.of_block = of_block
        self.start = start
        """Where each block's first field line ends (its newline), from the header line's newline."""
        self.stop = stop
        """Where the newline before each block's `VmFlags:` line is, from the header line's newline."""
        self._distinct: Optional[list[bytes]] = None
        self._values: dict[bytes, dict[bytes, Optional[Size]]] = {}
        self._counts: Optional[Counter[bytes]] = None

    @classmethod
    def of(cls, cuts: list[bytes], start: int, stop: int, lines: int) -> Optional[Sections]:
        """The sections of blocks whose header line's newline is nl, cut from nl + start - 2 (the
        last two bytes of the first field line, which ends at nl + start) to nl + stop (the newline
        before `VmFlags:`), with `lines` lines between; None unless every cut is such a section.

        Each cut starts with the last two bytes of the first line and its newline (`kB\\n`): a
        cut that starts so, and holds `lines` newlines, can only be those lines. So only each
        distinct cut is checked, never each block.
        """
        if not cuts:
            return None
        seen: dict[bytes, bytes] = {}
        of_block = list(map(seen.setdefault, cuts, cuts))
        first = cuts[0][:3]
        if first[2:] != b"\n" or any(not section.startswith(first) or section.count(b"\n") != lines for section in seen):
            return None
        return cls(of_block, start, stop)

    def distinct(self) -> list[bytes]:
        """Each distinct text, in the order of the blocks."""
        if self._distinct is None:
            self._distinct = list(dict.fromkeys(self.of_block))
        return self._distinct

    def values(self, key: bytes) -> dict[bytes, Optional[Size]]:
        """Each distinct text's `key` field (`b"\\nRss:"`), as `number_at` reads it: only the
        field asked for is parsed, once per distinct text."""
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = _values_of(self.distinct(), key)
        return found

    def has(self, key: bytes) -> bool:
        """True when some block has the `key` field among these lines."""
        return any(key in text for text in self.distinct())

    def column(self, key: bytes) -> list[Optional[Size]]:
        """The `key` field of every block (None where a block has no such line)."""
        return list(map(self.values(key).__getitem__, self.of_block))

    def total(self, key: bytes, first: int, stop: int) -> Optional[int]:
        """The sum of the `key` field over blocks first..stop-1; None when none of them has it."""
        values = self.values(key)
        if first == 0 and stop == len(self.of_block):
            if self._counts is None:
                self._counts = Counter(self.of_block)
            counted = [(values[text], n) for text, n in self._counts.items()]
            present = [int(value) * n for value, n in counted if value is not None]
        else:
            present = [int(v) for v in map(values.__getitem__, self.of_block[first:stop]) if v is not None]
        return sum(present) if present else None


def _values_of(texts: list[bytes], key: bytes) -> dict[bytes, Optional[Size]]:
    """`number_at(text, key)` of each text: the rest of its first `key` line, each distinct rest
    parsed once (most texts share the value of most fields)."""
    out: dict[bytes, Optional[Size]] = {}
    parsed: dict[bytes, Optional[Size]] = {}
    skip = len(key)
    for text in texts:
        at = text.find(key)
        if at < 0:
            out[text] = None
            continue
        nl = text.find(b"\n", at + skip)
        rest = text[at + skip : nl if nl >= 0 else len(text)]
        value = parsed.get(rest, _UNSEEN)
        if value is _UNSEEN:
            value = parsed[rest] = number_of(rest)
        out[text] = value  # type: ignore[assignment]
    return out


_UNSEEN = object()
