"""The domain model: `Mapping`, `Snapshot`, `Totals`, and `snapshot()` that fills them from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import compress, repeat
from operator import sub
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from . import _smaps
from ._procfs import ProcFS, Stat, default_procfs, task_file
from .errors import (
    NotSupported,
    PidReused,
    ProcessGone,
    SmapsParseError,
    SnapshotFileError,
    UsageError,
    hide_from_tracebacks,
)
from .size import Size

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Mapping", "Snapshot", "Totals", "METRICS", "mappings_of", "snapshot", "spans"]

#: The metrics a budget can name, in the order reports show them.
METRICS = ("mapped", "writeable_private", "shared", "rss", "pss", "uss", "private_dirty", "anonymous", "swap")
#: The smaps fields each memory metric sums (uss is the memory only this process holds).
_METRIC_FIELDS: dict[str, tuple[str, ...]] = {
    "rss": ("Rss",),
    "pss": ("Pss",),
    "uss": ("Private_Clean", "Private_Dirty"),
    "private_dirty": ("Private_Dirty",),
    "anonymous": ("Anonymous",),
    "swap": ("Swap",),
}
_SUMMED = sorted({name for names in _METRIC_FIELDS.values() for name in names})


def _field_property(key: bytes, doc: str) -> Any:
    """A `Mapping` property for the `kB` field on the `key` line (`b"\\nRss:"`).

    The first mapping to ask reads the field for every mapping of its run; after that, a read is
    one dict and one list lookup, with no further call: this runs once per mapping per field.
    """

    def read(self: Mapping) -> Optional[Size]:
        try:
            return self._run.columns[key][self._i]
        except KeyError:
            return self._run.numbers(key)[self._i]

    return property(read, doc=doc)


class Mapping:
    """One mapping (VMA) of a process's address space, as `/proc/PID/smaps` shows it.

    A mapping is a read-only view of one block of the kernel's text (a `_smaps.Run` and an index
    into it). Its header and fields are parsed the first time any mapping of the run asks for
    them, for every mapping of the run at once: a process can have tens of thousands of
    mappings, and parsing them in bulk keeps `snapshot()` close to the cost of the kernel's own
    `read()`.
    """

    __slots__ = ("_run", "_i", "_fields")

    def __init__(self, run: _smaps.Run, i: int) -> None:
        self._run = run
        self._i = i

    @classmethod
    def from_text(cls, text: bytes | str) -> Mapping:
        """One mapping from its smaps (or maps) text: a header line, then any `Key: value` lines."""
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        found = mappings_of(_smaps.locate_smaps([data]))
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

    def _parsed(self) -> _smaps.HeaderFields:
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
        """The name pmap shows in its default, -x and -d listings: the file's base name or `[ anon ]`."""
        raw = self.raw_path
        if b"/" in raw:
            return raw[raw.rfind(b"/") + 1 :].decode("utf-8", "surrogateescape") or "/"
        return "  [ stack ]" if raw == b"[stack]" else "  [ anon ]"

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
    def fields(self) -> dict[str, _smaps.FieldValue]:
        """Every smaps field in the kernel's order, unknown ones included.

        `kB` fields are in bytes; bare numbers (THPeligible) are ints; VmFlags and other text stay text.
        Empty for a mapping read from `maps` rather than `smaps`.
        """
        try:
            return self._fields
        except AttributeError:
            self._fields: dict[str, _smaps.FieldValue] = self._run.fields(self._i)
            return self._fields

    def field(self, name: str) -> Optional[Size]:
        """One `kB` field in bytes (or a bare number as it is), or None when this mapping has no such field."""
        return self._run.numbers(b"\n" + name.encode("ascii") + b":")[self._i]

    rss = _field_property(b"\nRss:", "Resident memory (smaps `Rss`); None when the kernel does not say (maps-only, WSL1).")
    pss = _field_property(b"\nPss:", "Proportional share of resident memory (`Pss`).")
    private_clean = _field_property(b"\nPrivate_Clean:", "Resident pages only this process maps, unmodified (`Private_Clean`).")
    private_dirty = _field_property(b"\nPrivate_Dirty:", "Resident pages only this process maps, modified (`Private_Dirty`).")
    shared_clean = _field_property(b"\nShared_Clean:", "Resident pages shared with other processes, unmodified (`Shared_Clean`).")
    shared_dirty = _field_property(b"\nShared_Dirty:", "Resident pages shared with other processes, modified (`Shared_Dirty`).")
    anonymous = _field_property(b"\nAnonymous:", "Resident anonymous pages (`Anonymous`).")
    swap = _field_property(b"\nSwap:", "Swapped-out pages (`Swap`).")

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


@dataclass(frozen=True)
class Totals:
    """Memory totals of one process, or the signed change between two readings of it.

    Every field is a `Size` in bytes, or None when the kernel did not report it (see `missing`).
    """

    mapped: Optional[Size] = None
    """Address space mapped (pmap -d's `mapped`)."""
    writeable_private: Optional[Size] = None
    """Private writeable address space (pmap -d's `writeable/private`)."""
    shared: Optional[Size] = None
    """Shared address space (pmap -d's `shared`)."""
    rss: Optional[Size] = None
    """Resident set size."""
    pss: Optional[Size] = None
    """Proportional set size: shared pages divided among the processes that map them."""
    uss: Optional[Size] = None
    """Unique set size: resident memory no other process maps (Private_Clean + Private_Dirty)."""
    private_dirty: Optional[Size] = None
    """Resident private pages that were written to."""
    anonymous: Optional[Size] = None
    """Resident anonymous memory."""
    swap: Optional[Size] = None
    """Memory swapped out."""

    @property
    def missing(self) -> tuple[str, ...]:
        """The metrics the kernel did not report."""
        return tuple(name for name in METRICS if getattr(self, name) is None)

    def as_dict(self) -> dict[str, Optional[int]]:
        """The totals as plain ints (bytes), None where missing."""
        return {name: (None if v is None else int(v)) for name in METRICS for v in [getattr(self, name)]}

    def __sub__(self, other: Totals) -> Totals:
        if not isinstance(other, Totals):
            return NotImplemented
        values = {}
        for name in METRICS:
            a, b = getattr(self, name), getattr(other, name)
            values[name] = None if a is None or b is None else Size.of(a - b)
        return Totals(**values)


def mode_totals(mappings: Iterable[Mapping]) -> tuple[int, int, int]:
    """pmap -d's (mapped, writeable/private, shared), in bytes: shared mappings count as shared,
    private writeable ones as writeable/private, and every mapping towards mapped."""
    by_perms: dict[str, int] = {}
    for run, first, stop in spans(mappings):
        columns = run.header_columns()
        add_sizes_by_perms(by_perms, columns.perms[first:stop], columns.starts[first:stop], columns.ends[first:stop])
    return mode_totals_of(by_perms)


def add_sizes_by_perms(by_perms: dict[str, int], perms: list[str], starts: list[int], ends: list[int]) -> None:
    """Add the sizes of these mappings (given column by column) to `by_perms`, by permissions."""
    sizes = list(map(sub, ends, starts))
    for p in set(perms):
        by_perms[p] = by_perms.get(p, 0) + sum(compress(sizes, map(p.__eq__, perms)))


def mode_totals_of(by_perms: dict[str, int]) -> tuple[int, int, int]:
    """`mode_totals` from the sizes mapped with each permission (`rw-p`)."""
    shared = sum(size for perms, size in by_perms.items() if perms[3] == "s")
    writeable = sum(size for perms, size in by_perms.items() if perms[3] == "p" and perms[1] == "w")
    readonly = sum(size for perms, size in by_perms.items() if perms[3] == "p" and perms[1] != "w")
    return shared + writeable + readonly, writeable, shared


#: Blocks first..stop-1 of one run: `(run, first, stop)`.
Span = tuple[_smaps.Run, int, int]


def spans(mappings: Iterable[Mapping]) -> Iterator[Span]:
    """The mappings as spans of consecutive blocks of one run, `(run, first, stop)`: what the
    column-wise readers of a run work on."""
    run: Optional[_smaps.Run] = None
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


def mappings_of(runs: Iterable[_smaps.Run]) -> list[Mapping]:
    """One `Mapping` per block of the runs, in order."""
    out: list[Mapping] = []
    for run in runs:
        out += map(Mapping, repeat(run, len(run)), range(len(run)))
    return out


def _sum_fields(mappings: list[Mapping]) -> dict[str, int]:
    """Sum the smaps fields the metrics need over all mappings, column by column; a field no
    mapping has is left out."""
    runs = list(spans(mappings))
    sums: dict[str, int] = {}
    for name in _SUMMED:
        key = b"\n" + name.encode() + b":"
        for run, first, stop in runs:
            present = [v for v in run.numbers(key)[first:stop] if v is not None]
            if present:
                sums[name] = sums.get(name, 0) + sum(map(int, present))
    return sums


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A process's memory map at one moment: its mappings and totals, as the kernel reported them."""

    FORMAT: ClassVar[str] = "pytest-pmap-snapshot"
    VERSION: ClassVar[int] = 1

    pid: int
    """The process (thread group) ID."""
    mappings: list[Mapping]
    """Every mapping, in address order."""
    raw_cmdline: bytes = b""
    """`/proc/PID/cmdline` as read: NUL-separated arguments (empty for kernel threads and zombies)."""
    comm: bytes = b""
    """The command name from `/proc/PID/stat`."""
    state: str = "S"
    """The process state letter when the snapshot was taken."""
    start_time: int = 0
    """Start time in clock ticks since boot: with `pid`, names one process for good."""
    start_stack: int = 0
    """Bottom of the main stack: pmap names the mapping holding it `[ stack ]`."""
    taken_at: float = field(default_factory=time.time)
    """When the snapshot was taken (seconds since the epoch)."""
    detail: bool = True
    """True when mappings carry smaps fields (Rss, Pss, ...); False for maps + smaps_rollup only."""
    rollup: Optional[dict[str, _smaps.FieldValue]] = None
    """`/proc/PID/smaps_rollup` fields (bytes for kB fields), when it was read."""
    status: dict[str, str] = field(default_factory=dict)
    """`/proc/PID/status` lines (VmHWM, VmRSS, Threads, ...)."""
    shm_minor: Optional[int] = None
    """Minor device number of SysV shared memory on the machine, for pmap's `[ shmid=0x... ]` names."""

    @property
    def cmdline(self) -> str:
        """The command line, arguments separated by spaces."""
        return " ".join(self.argv)

    @property
    def argv(self) -> list[str]:
        """The command-line arguments."""
        raw = self.raw_cmdline
        if raw.endswith(b"\0"):
            raw = raw[:-1]
        return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")] if raw else []

    # -- totals ---------------------------------------------------------------------------------
    @cached_property
    def _field_sums(self) -> dict[str, int]:
        if self.detail:
            return _sum_fields(self.mappings)
        rollup = self.rollup or {}
        return {k: int(v) for k, v in rollup.items() if k in _SUMMED and isinstance(v, int)}

    @property
    def totals_from(self) -> str:
        """Where the totals of smaps fields come from: `smaps` (summed over the mappings) or
        `smaps_rollup`. A `detail=False` snapshot of a kernel without smaps_rollup (before Linux
        4.14, gVisor) reads and sums smaps instead, and says so here."""
        return "smaps" if self.detail else "smaps_rollup"

    @cached_property
    def totals(self) -> Totals:
        """All metrics at once; each is None when the kernel did not report it."""
        mapped, writeable, shared = mode_totals(self.mappings)
        sums = self._field_sums
        values: dict[str, Optional[Size]] = {
            "mapped": Size.of(mapped),
            "writeable_private": Size.of(writeable),
            "shared": Size.of(shared),
        }
        for metric, names in _METRIC_FIELDS.items():
            values[metric] = Size.of(sum(sums[n] for n in names)) if all(n in sums for n in names) else None
        return Totals(**values)

    @property
    def mapped(self) -> Size:
        """Address space mapped: pmap -d's `mapped`."""
        return self.totals.mapped  # type: ignore[return-value]

    @property
    def writeable_private(self) -> Size:
        """Private writeable address space: pmap -d's `writeable/private`."""
        return self.totals.writeable_private  # type: ignore[return-value]

    @property
    def shared(self) -> Size:
        """Shared address space: pmap -d's `shared`."""
        return self.totals.shared  # type: ignore[return-value]

    def missing(self, name: str) -> str:
        """Why metric `name` is None here: which smaps lines the kernel did not write, and the
        metrics that are available instead."""
        return (f"PID {self.pid}: the kernel reported no {name} ({self.totals_from} has no "
                f"{' / '.join(_METRIC_FIELDS[name])} lines); metrics available: "
                f"{', '.join(m for m in METRICS if getattr(self.totals, m) is not None)}")

    def _metric(self, name: str) -> Size:
        value = getattr(self.totals, name)
        if value is None:
            raise NotSupported(self.missing(name))
        return value  # type: ignore[no-any-return]

    @property
    def rss(self) -> Size:
        """Resident set size."""
        return self._metric("rss")

    @property
    def pss(self) -> Size:
        """Proportional set size."""
        return self._metric("pss")

    @property
    def uss(self) -> Size:
        """Unique set size (Private_Clean + Private_Dirty)."""
        return self._metric("uss")

    @property
    def private_dirty(self) -> Size:
        """Resident private pages that were written to."""
        return self._metric("private_dirty")

    @property
    def anonymous(self) -> Size:
        """Resident anonymous memory."""
        return self._metric("anonymous")

    @property
    def swap(self) -> Size:
        """Memory swapped out."""
        return self._metric("swap")

    @property
    def peak_rss(self) -> Optional[Size]:
        """`VmHWM` from status: the highest RSS since start or since the last `clear_refs` reset."""
        return self.status_size("VmHWM")

    def status_size(self, key: str) -> Optional[Size]:
        """A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`, `RssAnon`, ...) in bytes; None when absent."""
        return _status_size(self.status.get(key))

    # -- views ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Mapping]:
        return iter(self.mappings)

    def __len__(self) -> int:
        return len(self.mappings)

    def render(self, fmt: str = "d", **options: Any) -> str:
        """The text `pmap [-d|-x|-X|-XX] PID` prints for this snapshot, header line included.

        `fmt` is "default", "x", "d", "X" or "XX"; options are `quiet`, `show_path`, `range`
        (a (low, high) address pair) and `utf8` (the locale's codeset; default from the environment).
        """
        from . import render

        return render.render(self, fmt, **options)

    def diff(self, other: Snapshot) -> Any:
        """The `MapDiff` from `other` (the earlier snapshot) to this one."""
        from .diff import MapDiff

        return MapDiff.between(other, self)

    # -- files ----------------------------------------------------------------------------------
    def smaps_text(self) -> bytes:
        """The maps (detail=False) or smaps text of every mapping, as the kernel wrote it."""
        return b"".join(m.text for m in self.mappings)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything needed to render and compare the snapshot later."""
        def text(b: bytes) -> str:
            return b.decode("utf-8", "surrogateescape")

        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "pid": self.pid,
            "cmdline": text(self.raw_cmdline),
            "comm": text(self.comm),
            "state": self.state,
            "start_time": self.start_time,
            "start_stack": self.start_stack,
            "taken_at": self.taken_at,
            "detail": self.detail,
            "shm_minor": self.shm_minor,
            "rollup": self.rollup,
            "status": self.status,
            "smaps": text(self.smaps_text()),
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "snapshot") -> Snapshot:
        """Rebuild a snapshot from `to_json()` output; `source` names it in errors."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise SnapshotFileError(f"{source} is not a pytest-pmap snapshot (no \"format\": \"{cls.FORMAT}\")")
        version = data.get("version")
        if version != cls.VERSION:
            raise SnapshotFileError(
                f"{source} is a version {version!r} snapshot; this pytest-pmap reads version {cls.VERSION}: "
                "upgrade pytest-pmap, or take the snapshot again"
            )

        def raw(s: str) -> bytes:
            return s.encode("utf-8", "surrogateescape")

        try:
            detail = bool(data["detail"])
            smaps = raw(data["smaps"])
            runs = list(_smaps.locate_smaps([smaps])) if detail else _smaps.locate_maps(smaps)
            for run in runs:
                run.headers()  # a corrupt header line fails here, not when the snapshot is used
            mappings = mappings_of(runs)
            return cls(
                pid=int(data["pid"]),
                mappings=mappings,
                raw_cmdline=raw(data["cmdline"]),
                comm=raw(data["comm"]),
                state=str(data["state"]),
                start_time=int(data["start_time"]),
                start_stack=int(data["start_stack"]),
                taken_at=float(data["taken_at"]),
                detail=detail,
                rollup=data.get("rollup"),
                status=dict(data.get("status") or {}),
                shm_minor=data.get("shm_minor"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, SmapsParseError) as exc:
            raise SnapshotFileError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the snapshot as versioned JSON, atomically: a reader never sees half a file."""
        import json
        from pathlib import Path

        from ._files import write_atomic

        target = Path(path)
        write_atomic(target, json.dumps(self.to_json(), indent=1).encode() + b"\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by `save()`; a missing, corrupt or unknown-version file is a clear error."""
        import json

        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            raise SnapshotFileError(f"snapshot file {os.fspath(path)!r} does not exist") from None
        except OSError as exc:
            raise SnapshotFileError(f"cannot read snapshot file {os.fspath(path)!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise SnapshotFileError(f"snapshot file {os.fspath(path)!r} is not valid JSON: {exc}") from None
        return cls.from_json(data, source=f"snapshot file {os.fspath(path)!r}")

    def __repr__(self) -> str:
        return f"<Snapshot pid={self.pid} {len(self.mappings)} mappings mapped={self.mapped} cmd={self.cmdline[:60]!r}>"


def _status_size(value: Optional[str]) -> Optional[Size]:
    if not value or not value.endswith(" kB"):
        return None
    return Size.of(int(value[:-3]) << 10)


# -- reading a live process ---------------------------------------------------------------------------

_SHM_MINOR: list[Optional[int]] = []


def shm_minor() -> Optional[int]:
    """Minor device number of the kernel's internal shmem mount (where SysV segments live).

    pmap finds it by attaching a SysV segment of its own; a memfd lives on the same mount, and
    creating one maps nothing.
    """
    if not _SHM_MINOR:
        try:
            fd = os.memfd_create("pytest-pmap-probe")
        except (AttributeError, OSError):
            _SHM_MINOR.append(None)
        else:
            try:
                dev = os.fstat(fd).st_dev
                _SHM_MINOR.append(os.minor(dev) if os.major(dev) == 0 else None)
            finally:
                os.close(fd)
    return _SHM_MINOR[0]


def tgid_of(pid: int, fs: ProcFS) -> int:
    """The thread group (process) a PID or thread ID belongs to."""
    tgid = fs.status(pid).get("Tgid", "")
    return int(tgid) if tgid.isdigit() else pid


def snapshot(pid: Optional[int] = None, *, detail: bool = True, procfs: Optional[ProcFS] = None) -> Snapshot:
    """Take a snapshot of process `pid` (the calling process when None).

    `detail=True` reads `/proc/PID/smaps` (every mapping with its Rss, Pss, ...).
    `detail=False` reads `maps` and `smaps_rollup` only: much cheaper, totals but no per-mapping fields.
    A thread ID means its process. A process whose main thread has exited is read through one of
    its live threads. Raises `ProcessGone` if the process exits, is a zombie, or its PID is reused
    while it is read (never a partial map), and `AccessDenied` when the kernel will not show its map.
    """
    fs = procfs or default_procfs()
    pid = os.getpid() if pid is None else check_pid(pid, fs)
    tgid = tgid_of(pid, fs)
    before = fs.stat(tgid)
    thread = map_thread(fs, tgid, before)
    if thread is not None:  # the main thread's stat no longer shows where the stack is
        before = replace(before, start_stack=fs.stat(tgid, thread).start_stack)
    cmdline = fs.cmdline(tgid, thread)
    rollup = None
    if detail:
        mappings = mappings_of(_smaps.locate_smaps(fs.chunks(tgid, task_file(thread, "smaps"))))
    else:
        mappings = mappings_of(_smaps.locate_maps(fs.read(tgid, task_file(thread, "maps"))))
        rollup = _read_rollup(fs, tgid, thread)
        if rollup is None:  # no smaps_rollup on this kernel: sum smaps instead
            detail = True
            mappings = mappings_of(_smaps.locate_smaps(fs.chunks(tgid, task_file(thread, "smaps"))))
    status = fs.status(tgid, thread)
    after = _check_same_process(fs, before, thread, mappings)
    return Snapshot(
        pid=tgid,
        mappings=mappings,
        raw_cmdline=cmdline,
        comm=before.comm,
        state=after.state,
        start_time=before.start_time,
        start_stack=before.start_stack,
        detail=detail,
        rollup=rollup,
        status=status,
        shm_minor=shm_minor() if fs.root == "/proc" else None,
    )


def map_thread(fs: ProcFS, tgid: int, stat: Stat) -> Optional[int]:
    """The thread to read the map of process `tgid` through: None for the process itself, a live
    thread's ID when its main thread has exited (`stat` shows a zombie while others run on).
    Raises `ProcessGone` when the whole process has exited."""
    if not stat.is_zombie:
        return None
    thread = fs.live_thread(tgid)
    if thread is None:
        raise ProcessGone(f"PID {tgid} has exited (it is a zombie, not yet reaped by its parent): it has no memory map")
    return thread


def _read_rollup(fs: ProcFS, pid: int, thread: Optional[int]) -> Optional[dict[str, _smaps.FieldValue]]:
    name = task_file(thread, "smaps_rollup")
    try:
        return _smaps.parse_rollup(fs.read(pid, name))
    except ProcessGone:
        if fs.exists(pid) and not os.path.exists(fs.path(pid, name)):
            return None
        raise


def _check_same_process(fs: ProcFS, before: Stat, thread: Optional[int], mappings: list[Mapping]) -> Stat:
    """Check, after reading, that the map read is whole and still the same process's; return the
    state of whoever it was read through (the process, or its live `thread`)."""
    pid = before.pid
    after = fs.stat(pid)
    if after.start_time != before.start_time:
        raise ProcessGone(
            f"PID {pid} was reused while its map was read (start time {before.start_time} became "
            f"{after.start_time}): nothing was recorded"
        )
    if thread is not None:
        after = fs.stat(pid, thread)
    if after.is_zombie:
        raise ProcessGone(f"PID {pid} exited while its map was read: nothing was recorded")
    if not mappings and not after.is_kernel_thread:
        raise ProcessGone(f"PID {pid} has no memory map left: it is exiting; nothing was recorded")
    return after


def check_same_process(watched: Snapshot, now: Snapshot) -> None:
    """Raise `PidReused` when `now` is of another process than `watched` under the same PID: the
    process watched has exited and its PID was given to a new one (their start times differ)."""
    if now.pid == watched.pid and now.start_time != watched.start_time:
        raise PidReused(
            f"PID {now.pid} now names another process: the one watched started at {_since_boot(watched.start_time)}, "
            f"the one there now at {_since_boot(now.start_time)}. The process watched has exited; its PID was reused"
        )


def _since_boot(ticks: int) -> str:
    """A start time (clock ticks since boot) as people read it: `5123.40 s after boot (tick 512340)`."""
    return f"{ticks / os.sysconf('SC_CLK_TCK'):.2f} s after boot (tick {ticks})"


def check_pid(pid: object, fs: ProcFS) -> int:
    """`pid` if it can be a PID on this system; else a `UsageError` (a ValueError) naming it (and pid_max)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise UsageError(f"{pid!r} is not a PID: give a positive integer, or None for this process")
    try:
        with open(f"{fs.root}/sys/kernel/pid_max", "rb") as f:
            pid_max = int(f.read())
    except (OSError, ValueError):  # a procfs without it (a test tree): the kernel will say
        return pid
    if pid >= pid_max:
        raise UsageError(f"{pid} is not a PID on this system: PIDs are below pid_max ({pid_max})")
    return pid
