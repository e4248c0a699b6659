"""`Snapshot`: a process's memory map at one moment, its totals, and what it can become: pmap's
text (`render`), a diff against an earlier one (`diff`), a versioned JSON file (`save`/`load`).

Taking one from a live process is `acquire.snapshot()`; nothing here reads /proc.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from ..errors import NotSupported, SmapsParseError, SnapshotFileError, hide_from_tracebacks
from ..size import Size
from .diff import MapDiff
from .files import dumps, write_atomic
from .jsonfiles import LAST_TIME, read_json
from .mapping import Mapping, block_without_fields, mappings_of
from .parse.locate import locate_maps, locate_smaps
from .parse.status import kb_bytes
from .render.listing import render
from .render.names import Names
from .totals import METRIC_FIELDS, METRICS, SUMMED, Totals, mode_totals, sum_fields

if TYPE_CHECKING:
    from .parse.fields import FieldValue

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["Snapshot"]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A process's memory map at one moment: its mappings and totals, as the kernel reported them."""

    FORMAT: ClassVar[str] = "pytest-pmap-snapshot"
    VERSION: ClassVar[int] = 1
    is_tree: ClassVar[bool] = False
    """True for a `TreeSnapshot` (a process and its descendants)."""

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
    rollup: Optional[dict[str, FieldValue]] = None
    """`/proc/PID/smaps_rollup` fields (bytes for kB fields), when it was read."""
    status: dict[str, str] = field(default_factory=dict)
    """`/proc/PID/status` lines (VmHWM, VmRSS, Threads, ...)."""
    shm_minor: Optional[int] = None
    """Minor device number of SysV shared memory on the machine, for pmap's `[ shmid=0x... ]` names."""
    ppid: Optional[int] = None
    """The parent's process ID when the snapshot was taken (None in files of releases that did not record it)."""

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
            return sum_fields(self.mappings)
        rollup = self.rollup or {}
        return {k: int(v) for k, v in rollup.items() if k in SUMMED and isinstance(v, int)}

    @property
    def totals_from(self) -> str:
        """Where the totals of smaps fields come from: `smaps` (summed over the mappings) or
        `smaps_rollup`. A `detail=False` snapshot of a kernel without smaps_rollup (before Linux
        4.14, gVisor) reads and sums smaps instead, and says so here."""
        return "smaps" if self.detail else "smaps_rollup"

    @cached_property
    def _mode_totals(self) -> tuple[int, int, int]:
        return mode_totals(self.mappings)

    @cached_property
    def totals(self) -> Totals:
        """All metrics at once; each is None when the kernel did not report it."""
        mapped, writeable, shared = self._mode_totals
        values: dict[str, Optional[Size]] = {
            "mapped": Size.of(mapped),
            "writeable_private": Size.of(writeable),
            "shared": Size.of(shared),
        }
        for metric in METRIC_FIELDS:
            values[metric] = self._field_metric(metric)
        return Totals(**values)

    def _field_metric(self, metric: str) -> Optional[Size]:
        """A metric that sums smaps fields (all but pmap -d's three): only the fields' sums are
        needed, not the header lines of every mapping."""
        sums, names = self._field_sums, METRIC_FIELDS[metric]
        return Size.of(sum(sums[n] for n in names)) if all(n in sums for n in names) else None

    @property
    def mapped(self) -> Size:
        """Address space mapped: pmap -d's `mapped`."""
        return Size.of(self._mode_totals[0])

    @property
    def writeable_private(self) -> Size:
        """Private writeable address space: pmap -d's `writeable/private`."""
        return Size.of(self._mode_totals[1])

    @property
    def shared(self) -> Size:
        """Shared address space: pmap -d's `shared`."""
        return Size.of(self._mode_totals[2])

    def missing(self, name: str) -> str:
        """Why metric `name` is None here: which smaps lines the kernel did not write, and the
        metrics that are available instead."""
        return (f"PID {self.pid}: the kernel reported no {name} ({self.totals_from} has no "
                f"{' / '.join(METRIC_FIELDS[name])} lines); metrics available: "
                f"{', '.join(m for m in METRICS if getattr(self.totals, m) is not None)}")

    def _metric(self, name: str) -> Size:
        value = self._field_metric(name)
        if value is None:
            raise NotSupported(self.missing(name))
        return value

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
        value = kb_bytes(self.status.get(key))
        return None if value is None else Size.of(value)

    # -- views ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Mapping]:
        return iter(self.mappings)

    def __len__(self) -> int:
        return len(self.mappings)

    def render(
        self,
        fmt: str = "d",
        *,
        quiet: bool = False,
        show_path: bool = False,
        range: Optional[tuple[int, int]] = None,  # noqa: A002 - pmap's own word for -A
        utf8: Optional[bool] = None,
    ) -> str:
        """The text `pmap [-d|-x|-X|-XX] PID` prints for this snapshot, header line included.

        `fmt` is "default", "x", "d", "X" or "XX"; `range` is a (low, high) address pair (-A);
        `utf8` is the locale's codeset (default from the environment).
        """
        return render(self, fmt, quiet=quiet, show_path=show_path, range=range, utf8=utf8)

    def diff(self, other: Snapshot, ignore: Optional[Callable[[Mapping], bool]] = None) -> MapDiff:
        """The `MapDiff` from `other` (the earlier snapshot) to this one, leaving out the mappings
        for which `ignore(mapping)` is true."""
        return MapDiff.between(other, self, ignore)

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
            "ppid": self.ppid,
            "rollup": self.rollup,
            "status": self.status,
            "smaps": text(self.smaps_text()),
        }

    @classmethod
    def from_json(cls, data: object, *, source: str = "snapshot") -> Snapshot:
        """Rebuild a snapshot from `to_json()` output; `source` names it in errors."""
        if isinstance(data, dict) and data.get("format") == "pytest-pmap-tree":
            raise SnapshotFileError(f"{source} is a process tree's snapshot: read it with TreeSnapshot.load()")
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

        _check_shape(data, source)
        try:
            detail = bool(data["detail"])
            smaps = raw(data["smaps"])
            runs = list(locate_smaps([smaps])) if detail else locate_maps(smaps)
            for run in runs:
                run.headers()  # a corrupt header line fails here, not when the snapshot is used
            if detail and (bare := block_without_fields(runs)) is not None:
                raise SnapshotFileError(f"{source} is corrupt: it says \"detail\": true, but its mapping at "
                                        f"{bare.split(b'-', 1)[0].decode(errors='replace')[:20]} has no smaps fields; "
                                        "take the snapshot again")
            start_stack, shm_minor = int(data["start_stack"]), data.get("shm_minor")
            mappings = mappings_of(runs, Names(start_stack, shm_minor))
            return cls(
                pid=int(data["pid"]),
                mappings=mappings,
                raw_cmdline=raw(data["cmdline"]),
                comm=raw(data["comm"]),
                state=str(data["state"]),
                start_time=int(data["start_time"]),
                start_stack=start_stack,
                taken_at=float(data["taken_at"]),
                detail=detail,
                rollup=data.get("rollup"),
                status=dict(data.get("status") or {}),
                shm_minor=shm_minor,
                ppid=None if data.get("ppid") is None else int(data["ppid"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, SmapsParseError) as exc:
            raise SnapshotFileError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the snapshot as versioned JSON, atomically: a reader never sees half a file."""
        write_atomic(path, dumps(self.to_json()))  # the name as given: Path("") would be "."
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by `save()`; a missing, corrupt or unknown-version file is a clear error."""
        what = f"snapshot file {os.fspath(path)!r}"
        return cls.from_json(read_json(path, what, SnapshotFileError), source=what)

    def __repr__(self) -> str:
        return f"<Snapshot pid={self.pid} {len(self.mappings)} mappings mapped={self.mapped} cmd={self.cmdline[:60]!r}>"


#: The JSON type of each field of a snapshot file (a bool is not a number here).
_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,), "cmdline": (str,), "comm": (str,), "state": (str,), "start_time": (int,), "start_stack": (int,),
    "taken_at": (int, float), "detail": (bool,), "smaps": (str,),
}


def _check_shape(data: dict[str, Any], source: str) -> None:
    """Refuse a snapshot file whose fields have the wrong types or impossible values (a PID of 0, a
    time that is not a number): each would otherwise fail later, far from the file."""
    def corrupt(why: str) -> SnapshotFileError:
        return SnapshotFileError(f"{source} is corrupt: {why}")

    for key, kinds in _FIELDS.items():
        if key not in data:
            raise corrupt(f"it has no {key!r}")
        value = data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise corrupt(f"{key!r} is {value!r:.60}, not {' or '.join(k.__name__ for k in kinds)}")
    if not 0 < data["pid"] < 1 << 31:  # above pid_max's ceiling (2**22) but within the kernel's pid_t
        raise corrupt(f"'pid' is {data['pid']}, not a PID")
    if data["start_time"] < 0 or data["start_stack"] < 0:
        raise corrupt("'start_time' and 'start_stack' must be 0 or more")
    if not 0 <= data["taken_at"] < LAST_TIME:  # also false for NaN
        raise corrupt(f"'taken_at' is {data['taken_at']!r}, not a time")
    if not (data.get("shm_minor") is None or type(data["shm_minor"]) is int):
        raise corrupt("'shm_minor' must be a whole number or null")
    rollup, status = data.get("rollup"), data.get("status") or {}
    if not (rollup is None or (isinstance(rollup, dict) and all(type(v) in (int, str) for v in rollup.values()))):
        raise corrupt("'rollup' must map field names to numbers or text")
    if not (isinstance(status, dict) and all(isinstance(v, str) for v in status.values())):
        raise corrupt("'status' must map field names to text")
