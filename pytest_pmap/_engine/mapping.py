"""`Mapping`: one mapping (VMA) of a process, a read-only view of one block of the kernel's text.

Also `spans()`, which groups mappings back into stretches of consecutive blocks of one parser run:
what the column-wise readers (totals, listings) work on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import sub

from ..errors import SmapsParseError, hide_from_tracebacks
from ..size import Size
from .parse.fields import HeaderFields
from .parse.locate import locate_smaps
from .parse.run import Run
from .render.names import Names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, overload

    from .parse.fields import FieldValue

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["Mapping", "Span", "block_without_fields", "mappings_of", "spans"]


class _Field:
    """A `Mapping` attribute for the `kB` field on the `key` line (`b"\\nRss:"`), in bytes; None
    when the mapping has no such line.

    The first mapping to ask reads the field for every mapping of its run; after that, a read is
    one dict and one list lookup: this runs once per mapping per field.
    """

    def __init__(self, key: bytes, doc: str) -> None:
        self.key = key
        self.__doc__ = doc

    if TYPE_CHECKING:
        @overload
        def __get__(self, mapping: None, owner: type[Mapping]) -> _Field: ...

        @overload
        def __get__(self, mapping: Mapping, owner: type[Mapping]) -> Optional[Size]: ...

    def __get__(self, mapping: Optional[Mapping], owner: type[Mapping]) -> Optional[Size] | _Field:
        if mapping is None:
            return self
        try:
            return mapping._run.columns[self.key][mapping._i]
        except KeyError:
            return mapping._run.numbers(self.key)[mapping._i]


class Mapping:
    """One mapping (VMA) of a process's address space, as `/proc/PID/smaps` shows it.

    A mapping is a read-only view of one block of the kernel's text (a parser `Run` and an index
    into it). Its header and fields are parsed the first time any mapping of the run asks for
    them, for every mapping of the run at once: a process can have tens of thousands of
    mappings, and parsing them in bulk keeps `snapshot()` close to the cost of the kernel's own
    `read()`.
    """

    __slots__ = ("_fields", "_i", "_names", "_run")

    def __init__(self, run: Run, i: int, names: Optional[Names] = None) -> None:
        self._run = run
        self._i = i
        self._names = names or _NO_PROCESS

    @classmethod
    def from_text(cls, text: bytes | str) -> Mapping:
        """One mapping from its smaps (or maps) text: a header line, then any `Key: value` lines."""
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        found = mappings_of(locate_smaps([data]))
        if len(found) != 1:
            raise SmapsParseError(f"expected the text of one mapping, found {len(found)}")
        return found[0]

    # -- the header line ------------------------------------------------------------------------
    @property
    def header_line(self) -> bytes:
        """The mapping's line as `/proc/PID/maps` shows it, without the newline."""
        return self._run.header_line(self._i)

    @property
    def text(self) -> bytes:
        """The mapping's whole smaps text: the header line and its field lines, newline-terminated."""
        body = self._run.body(self._i)
        return self.header_line + b"\n" + body + (b"\n" if body and not body.endswith(b"\n") else b"")

    def _parsed(self) -> HeaderFields:
        return self._run.headers()[self._i]

    @property
    def start(self) -> int:
        """First address of the mapping."""
        return self._parsed()[0]

    @property
    def end(self) -> int:
        """First address after the mapping."""
        return self._parsed()[1]

    @property
    def size(self) -> Size:
        """Address space the mapping covers (pmap's Kbytes)."""
        h = self._parsed()
        return Size.of(h[1] - h[0])

    @property
    def perms(self) -> str:
        """Permissions as the kernel writes them: `rw-p`, `r-xp`, `rw-s`."""
        return self._parsed()[2]

    @property
    def offset(self) -> int:
        """Offset into the mapped file."""
        return self._parsed()[3]

    @property
    def major(self) -> int:
        """Major number of the device holding the mapped file."""
        return self._parsed()[4]

    @property
    def minor(self) -> int:
        """Minor number of the device holding the mapped file."""
        return self._parsed()[5]

    @property
    def device(self) -> str:
        """The device as maps writes it: `fe:00`."""
        h = self._parsed()
        return f"{h[4]:02x}:{h[5]:02x}"

    @property
    def inode(self) -> int:
        """Inode of the mapped file; 0 for anonymous memory."""
        return self._parsed()[6]

    @property
    def raw_path(self) -> bytes:
        """The kernel's name for the mapping, byte for byte (`/usr/lib/x.so (deleted)`, `[heap]`, or empty)."""
        return self._parsed()[7]

    @property
    def path(self) -> str:
        """`raw_path` as text; bytes that are not UTF-8 survive as surrogate escapes."""
        return self.raw_path.decode("utf-8", "surrogateescape")

    @property
    def name(self) -> str:
        """pmap's Mapping column in its default, -x and -d listings: the file's base name,
        `  [ anon ]`, `  [ stack ]` or `  [ shmid=0x... ]` (see `render.names`)."""
        return self._names.one(self._run, self._i)

    @property
    def is_anon(self) -> bool:
        """True for memory with no file behind it: heap, stacks, private and shared anonymous mmaps.

        Shared anonymous memory (`mmap(-1, ...)` in Python) shows as `/dev/zero (deleted)` on the
        kernel's internal shmem device (major 0); memfds and SysV segments are named, so not anonymous.
        """
        h = self._parsed()
        if h[6] == 0:
            return not h[7].startswith(b"/")
        return h[4] == 0 and h[7] == b"/dev/zero (deleted)"

    @property
    def is_shared(self) -> bool:
        """True for shared mappings (`s` in perms): pmap counts them as shared."""
        return self.perms[3] == "s"

    @property
    def is_writeable_private(self) -> bool:
        """True for private writeable mappings: what pmap sums as writeable/private."""
        perms = self.perms
        return perms[3] == "p" and perms[1] == "w"

    # -- smaps fields ------------------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, FieldValue]:
        """Every smaps field in the kernel's order, unknown ones included.

        `kB` fields are in bytes; bare numbers (THPeligible) are ints; VmFlags and other text stay text.
        Empty for a mapping read from `maps` rather than `smaps`.
        """
        try:
            return self._fields
        except AttributeError:
            self._fields: dict[str, FieldValue] = self._run.fields(self._i)
            return self._fields

    def field(self, name: str) -> Optional[Size]:
        """One `kB` field in bytes (or a bare number as it is), or None when this mapping has no such field."""
        return self._run.numbers(b"\n" + name.encode("ascii") + b":")[self._i]

    rss = _Field(b"\nRss:", "Resident memory (smaps `Rss`); None when the kernel does not say (maps-only, WSL1).")
    pss = _Field(b"\nPss:", "Proportional share of resident memory (`Pss`).")
    private_clean = _Field(b"\nPrivate_Clean:", "Resident pages only this process maps, unmodified (`Private_Clean`).")
    private_dirty = _Field(b"\nPrivate_Dirty:", "Resident pages only this process maps, modified (`Private_Dirty`).")
    shared_clean = _Field(b"\nShared_Clean:", "Resident pages shared with other processes, unmodified (`Shared_Clean`).")
    shared_dirty = _Field(b"\nShared_Dirty:", "Resident pages shared with other processes, modified (`Shared_Dirty`).")
    anonymous = _Field(b"\nAnonymous:", "Resident anonymous pages (`Anonymous`).")
    swap = _Field(b"\nSwap:", "Swapped-out pages (`Swap`).")

    @property
    def uss(self) -> Optional[Size]:
        """Unique set size: `Private_Clean + Private_Dirty`."""
        clean, dirty = self.private_clean, self.private_dirty
        return None if clean is None or dirty is None else clean + dirty

    @property
    def dirty(self) -> Optional[Size]:
        """`Shared_Dirty + Private_Dirty`: pmap -x's Dirty column."""
        shared, private = self.shared_dirty, self.private_dirty
        return None if shared is None or private is None else shared + private

    @property
    def vmflags(self) -> Optional[tuple[str, ...]]:
        """The two-letter VmFlags (`rd`, `wr`, `nr`, ...), or None when smaps has no VmFlags line."""
        value = self.fields.get("VmFlags")
        return None if value is None else tuple(str(value).split())

    # -- identity -----------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        try:
            h = self._parsed()
        except SmapsParseError:
            return f"Mapping({self.header_line!r})"
        rss = self.rss
        extra = "" if rss is None else f" rss={rss}"
        return f"Mapping({h[0]:x}-{h[1]:x} {h[2]} {self.size}{extra} {self.path or '[anon]'})"




#: Names for mappings that come with no process (`Mapping.from_text`): no stack, no SysV segment.
_NO_PROCESS = Names()

#: Blocks first..stop-1 of one run: `(run, first, stop)`.
Span = tuple[Run, int, int]


def spans(mappings: Iterable[Mapping]) -> Iterator[Span]:
    """The mappings as spans of consecutive blocks of one run, `(run, first, stop)`: what the
    column-wise readers of a run work on."""
    run: Optional[Run] = None
    first = stop = 0
    for m in mappings:
        if m._run is run and m._i == stop:
            stop += 1
            continue
        if run is not None:
            yield run, first, stop
        run, first, stop = m._run, m._i, m._i + 1
    if run is not None:
        yield run, first, stop


def block_without_fields(runs: Iterable[Run]) -> Optional[bytes]:
    """The header line of the first block with no field lines, None when every block has some.
    The kernel writes fields (Size first) under every mapping of smaps; the renderers of a
    snapshot with detail (`-x`, `-X`, `diff`) read them, so a file whose text has none (a
    `--maps-only` snapshot edited to say `"detail": true`) is refused when it is loaded."""
    for run in runs:
        if run.nls and min(map(sub, run.ends, run.nls)) <= 1:  # nothing after a header line's newline (in C)
            return run.header_line(next(i for i, (nl, end) in enumerate(zip(run.nls, run.ends)) if end <= nl + 1))
    return None


def mappings_of(runs: Iterable[Run], names: Optional[Names] = None) -> list[Mapping]:
    """One `Mapping` per block of the runs, in order, named by `names` (pmap's names for one process)."""
    names = names or _NO_PROCESS
    out: list[Mapping] = []
    for run in runs:
        out += map(Mapping, repeat(run, len(run)), range(len(run)), repeat(names, len(run)))
    return out
