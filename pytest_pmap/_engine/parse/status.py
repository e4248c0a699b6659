"""Parsing `/proc/PID/stat` and `/proc/PID/status`: the one reader of each, for every caller.

Pure: bytes in, values out.
"""

from __future__ import annotations

import re
from collections import namedtuple

from ...errors import ProcessGone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional

    class _StatFields(NamedTuple):
        pid: int
        """The PID (or thread ID) the file belongs to."""
        comm: bytes
        """The command name: everything between the first `(` and the last `)`."""
        state: str
        """One letter: R, S, D, T, Z (zombie), X (dead), ..."""
        flags: int
        """The kernel's `PF_*` flags (field 9)."""
        start_time: int
        """Start time in clock ticks since boot (field 22): a PID plus this names one process for good."""
        start_stack: int
        """Address of the bottom of the main stack (field 28); pmap marks the mapping holding it `[ stack ]`."""
        ppid: int = 0
        """The parent's process ID (field 4); 0 when it has none here (a PID namespace's first process, kthreadd)."""
else:  # the command imports neither `typing` nor `dataclasses` (see _engine/__init__.py)
    _StatFields = namedtuple("_StatFields", "pid comm state flags start_time start_stack ppid", defaults=(0,))

__all__ = ["PF_KTHREAD", "Stat", "kb_bytes", "kb_lines", "parse_stat", "parse_status", "status_sizes"]

PF_KTHREAD = 0x00200000
"""The kernel's flag for a kernel thread (`PF_KTHREAD`, in stat's field 9)."""

_KB_LINE = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*):\s*(\d+) kB$", re.M)


class Stat(_StatFields):
    """The fields of `/proc/PID/stat` that pytest-pmap uses (see `_StatFields`)."""

    __slots__ = ()

    @property
    def is_zombie(self) -> bool:
        """True when the process has exited and waits to be reaped (or is being torn down)."""
        return self.state in ("Z", "X", "x")

    @property
    def is_kernel_thread(self) -> bool:
        """True for kernel threads, which have no user memory map at all."""
        return bool(self.flags & PF_KTHREAD)


def parse_stat(data: bytes, pid: int) -> Stat:
    """Parse `/proc/PID/stat`; the command name may hold spaces and parentheses, so split at the last `)`."""
    open_paren = data.find(b"(")
    close_paren = data.rfind(b")")
    fields = data[close_paren + 2 :].split()
    if open_paren < 0 or close_paren < open_paren or len(fields) < 26:
        raise ProcessGone(f"PID {pid}: /proc/{pid}/stat is empty or cut short; the process is exiting")
    return Stat(
        pid=pid,
        comm=data[open_paren + 1 : close_paren],
        state=fields[0].decode("ascii", "replace"),
        flags=int(fields[6]),
        start_time=int(fields[19]),
        start_stack=int(fields[25]),
        ppid=int(fields[1]),
    )


def parse_status(data: bytes) -> dict[str, str]:
    """`/proc/PID/status` as a dict of its `Key:\\tvalue` lines, values stripped (`"VmRSS": "1234 kB"`)."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "surrogateescape").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def status_sizes(data: bytes) -> dict[str, int]:
    """Every `kB` line of `/proc/PID/status` in bytes (`{"VmRSS": 1263616, ...}`): the cheap
    reading the per-test measurements take, twice a test."""
    lines = kb_lines(data)
    words = lines.split()
    keys = tuple(words[0::3])
    names = _KB_NAMES.get(keys) if len(words) == 3 * len(keys) and words[2::3].count(b"kB") == len(keys) else ()
    if names is None and all(k.endswith(b":") and v.isdigit() for k, v in zip(keys, words[1::3])):
        # The kernel writes `Name:<tab><spaces>digits kB` lines, always the same ones: their names
        # are decoded once.
        names = _KB_NAMES[keys] = tuple(k[:-1].decode() for k in keys)
    if not names:  # anything else (a line without kB amid them): line by line
        return {key.decode(): int(value) << 10 for key, value in _KB_LINE.findall(lines)}
    return dict(zip(names, [int(v) << 10 for v in words[1::3]]))


_KB_NAMES: dict[tuple[bytes, ...], tuple[str, ...]] = {}
"""The names of status's kB lines, by their bytes as the kernel writes them (one entry a kernel)."""


def kb_lines(data: bytes) -> bytes:
    """The part of `/proc/PID/status` that holds its `kB` lines: they come together, from the
    first `Vm` line to the last ` kB` line (a sixth of the file; all of it if that is not so)."""
    start, stop = data.find(b"\nVm"), data.rfind(b" kB\n")
    return data if start < 0 or stop < start else data[start : stop + 4]


def kb_bytes(value: Optional[str]) -> Optional[int]:
    """A status value such as `"1234 kB"` in bytes; None when absent or not a size."""
    if not value or not value.endswith(" kB") or not value[:-3].isdigit():
        return None
    return int(value[:-3]) << 10
