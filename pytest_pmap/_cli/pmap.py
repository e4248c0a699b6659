"""`pytest-pmap [-x|-d|-X|-XX|-c|-C FILE] [-q] [-p] [-A L[,H]] PID...` and `pytest-pmap -n|-N FILE`:
procps-ng pmap's command line, byte for byte.

The command line is read as pmap reads it (`pmapargs`), rc files as pmap reads and writes them
(`rcfile`); here every PID is collected first, then listed, each read through the one acquisition
path. The exit status is pmap's: 1 for unreadable maps or bad arguments, OR 42 when a PID was not
found.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Iterator

from .._engine.acquire import ATTEMPTS, ReadAgain, Target, finish, locate, maps_runs, smaps_runs
from .._engine.parse.run import Run
from .._engine.procfs import ProcFS, default_procfs
from .._engine.render.listing import render_runs
from .._engine.render.text import header_line, pmap_bytes
from ..errors import AccessDenied, NotSupported, ProcessGone
from .output import WriteError, complain, out
from .pmapargs import HELP_MORE, PROG, SYNOPSIS, Options, UsageExit, parse_args, parse_pid, parse_range

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["HELP_MORE", "SYNOPSIS", "Options", "UsageExit", "main", "parse_args", "parse_pid", "parse_range"]


def _create(opts: Options) -> int:
    """-n and -N: write the rc file template; pmap's messages, on stderr, and its exit status."""
    from .rcfile import create_rc

    assert opts.create_rc is not None
    done = create_rc(opts.create_rc)
    what = "~/.pmaprc" if opts.default_rc else "the rc file"
    if not done:
        complain(f"{PROG}: {'~/.pmaprc file' if opts.default_rc else 'rc file'} successfully created, "
                 "feel free to edit the content\n")
        return 0
    if done == "exists":
        complain(f"{PROG}: the file already exists - delete or rename it first\n")
    complain(f"{PROG}: couldn't create {what}\n")
    return 1


#: What a listing's header line and names need of a process (`render.text.Head`).
_Head = namedtuple("_Head", "pid raw_cmdline comm state start_stack shm_minor")


def _collect(fs: ProcFS, pid: int) -> Optional[Target]:
    """Who `pid` is, as pmap collects it for every PID before printing any; None when it is not
    there. A zombie, a kernel thread and a process whose main thread has exited (its own map is
    empty then, though other threads run on) are listed with an empty map, as pmap lists them."""
    try:
        return locate(pid, fs, allow_defunct=True, allow_kernel_thread=True, as_pmap=True)
    except (ProcessGone, AccessDenied, NotSupported, ValueError):
        return None


def _listing(fs: ProcFS, pid: int, target: Target, opts: Options) -> tuple[str, int]:
    """What pmap prints for one PID, and its exit status: 1, and the header line only, when the
    map cannot be read to its end (the process exited, or its PID was reused, meanwhile). A
    process that started a new program, or whose main thread exited, while it was read is read
    again, as `snapshot()` reads it."""
    for _ in range(ATTEMPTS - 1):
        try:
            return _read_listing(fs, target, opts)
        except ReadAgain:
            again = _collect(fs, pid)
            if again is None:
                break
            target = again
    return _read_listing(fs, target, opts, last=True)


def _read_listing(fs: ProcFS, target: Target, opts: Options, last: bool = False) -> tuple[str, int]:
    """One reading of `_listing`: ReadAgain propagates unless this is the `last` one. Each run of
    smaps is rendered as it arrives."""
    head = _Head(target.tgid, target.cmdline, target.stat.comm, target.stat.state, target.stat.start_stack,
                 target.names(fs).shm_minor)
    detail = opts.fmt in ("x", "X", "XX")
    mapped = []

    def counted(runs: Iterable[Run]) -> Iterator[Run]:
        for run in runs:
            mapped.append(len(run))
            yield run

    try:
        runs = smaps_runs(fs, target) if detail else maps_runs(fs, target)
        text = render_runs(
            head, counted(runs), opts.fmt, quiet=opts.quiet, show_path=opts.show_path, range=opts.range,
            columns=opts.columns,
        )
        finish(fs, target, any(mapped))
    except (ProcessGone, AccessDenied, NotSupported) as exc:
        if isinstance(exc, ReadAgain) and not last:
            raise
        return header_line(head) + "\n", 1
    return text, 0


def main(args: list[str]) -> int:
    """Run pmap's command line; returns the exit status. Output that cannot be written is pmap's
    `pmap: write error: ...` and status 1 (nothing when the reader went away)."""
    try:
        return _run(args)
    except WriteError as exc:
        if not exc.quiet:
            complain(f"{PROG}: write error: {exc}\n")
        return 1


def _run(args: list[str]) -> int:
    try:
        opts = parse_args(args)
    except UsageExit as exc:
        out(pmap_bytes(exc.stdout))
        complain(exc.stderr)
        return exc.status
    complain(opts.warnings)
    if opts.create_rc is not None:
        return _create(opts)
    fs = default_procfs()
    if fs.problem():  # else every PID would look absent (status 42), blaming the PIDs
        complain(f"pytest-pmap: {fs.problem()}\n")
        return 1
    found = [(pid, _collect(fs, pid) if fs.exists(pid) else None) for pid in opts.pids]
    targets = [(pid, target) for pid, target in found if target is not None]
    status = 0 if len(targets) == len(opts.pids) else 42
    for pid, target in targets:
        text, rc = _listing(fs, pid, target, opts)
        status |= rc
        out(pmap_bytes(text))
    return status
