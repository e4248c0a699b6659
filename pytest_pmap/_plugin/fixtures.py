"""The fixtures: `pmap` (the test process), `pmap_spawn` (a process the test starts, stopped and
reaped at teardown) and `pmap_attach` (a running process, left alone).

These are their bodies, and the explanation of a failing assertion on one of their readings;
`pytest_pmap.plugin` declares the fixtures and imports this module when a test first uses one."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import pytest

from .._engine.snapshot import Snapshot
from .._measure import processes
from .._measure.probe import Probe, Reading, exit_status
from .._measure.treeprobe import TreeProbe
from ..errors import PmapError, ProcessGone, UsageError, hide_from_tracebacks
from ..size import Size
from ..warnings import PmapWarning
from .hookspecs import ignore_rule
from .state import SESSION

__tracebackhide__ = hide_from_tracebacks  # a PmapError shows as the test's line and its message

__all__ = ["PROBES", "explain", "ignore_rule", "pmap", "pmap_attach", "pmap_spawn"]

STOP_TIMEOUT = 5.0
"""Seconds a spawned process gets to exit after SIGTERM before it is killed."""

PROBES = pytest.StashKey[list[Probe]]()
"""The probes a test's fixtures made: released when its teardown ends (a report keeps text only)."""


def _check_tree(fixture: str, tree: object) -> None:
    if not isinstance(tree, bool):
        raise UsageError(f"{fixture}: tree={tree!r}: give True (the process and all its descendants) or False "
                         "(the process alone)")


def _probe(request: pytest.FixtureRequest, pid: Optional[int], tree: bool = False,
           process: Optional[subprocess.Popen[bytes]] = None) -> Probe:
    config = request.config

    def on_snapshot(probe: Probe, snapshot: Snapshot) -> None:
        config.hook.pytest_pmap_snapshot(probe=probe, snapshot=snapshot)

    if tree:
        members = None if process is None else lambda: processes.descendants(process)
        probe: Probe = TreeProbe(pid, ignore=ignore_rule(config), on_snapshot=on_snapshot, members=members,
                                 process=process)
    else:
        probe = Probe(pid, ignore=ignore_rule(config), on_snapshot=on_snapshot)
    request.node.stash.setdefault(PROBES, []).append(probe)
    return probe


# -- fixtures -----------------------------------------------------------------------------------------


def pmap(request: pytest.FixtureRequest) -> Probe:
    """A `Probe` on the test process itself: baseline and peak reset at setup."""
    why = request.config.stash[SESSION].unavailable
    if why:
        pytest.skip(why)
    return _probe(request, None)


def pmap_spawn(request: pytest.FixtureRequest) -> Iterator[Callable[..., Probe]]:
    """`pmap_spawn(argv, tree=False, **popen_kwargs)` starts the process under test and returns its
    `Probe` (`probe.process` is the `subprocess.Popen`); with `tree=True`, a `TreeProbe` on it and
    everything it starts, measured as one. At teardown every process started, and every process it
    started (daemons that called `setsid` included), is sent SIGTERM, killed after a timeout, and
    reaped: none is left behind. See `pytest_pmap._measure.processes`."""
    why = request.config.stash[SESSION].unavailable
    if why:
        pytest.skip(why)
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def spawn(argv: Sequence[str | os.PathLike[str]], *, tree: bool = False, **popen_kwargs: Any) -> Probe:
        if not argv:
            raise UsageError("pmap_spawn needs a command to start: argv is empty")
        _check_tree("pmap_spawn", tree)
        program = os.fsdecode(argv if isinstance(argv, (str, bytes, os.PathLike)) else argv[0])
        controller = request.config.stash[SESSION].controller
        if controller is not None:  # an xdist worker: SIGTERM to the controller alone must stop our processes too
            processes.end_with(controller)
        try:
            proc = processes.start(argv, **popen_kwargs)
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"pmap_spawn could not start {program!r}: {getattr(exc, 'strerror', None) or exc}") from None
        started.append((proc, program))
        try:
            probe = _probe(request, proc.pid, tree, proc)
        except ProcessGone:
            if proc.poll() is None:
                raise
            raise ProcessGone(f"pmap_spawn: {program!r} (PID {proc.pid}) {exit_status(proc.returncode)} before its "
                              "memory map could be read: there was nothing to measure") from None
        probe.process = proc
        return probe

    try:
        yield spawn
    finally:
        for proc, program in started:
            crashed = proc.poll() is not None and -proc.returncode in _CRASH_SIGNALS
            stopped = processes.stop(proc, STOP_TIMEOUT)
            if crashed:
                request.node.warn(PmapWarning(f"pmap_spawn: {program!r} (PID {proc.pid}) crashed: it "
                                              f"{exit_status(proc.returncode)}"))
            if proc.pid in stopped.killed:
                request.node.warn(PmapWarning(f"pmap_spawn: {program!r} (PID {proc.pid}) ignored SIGTERM for "
                                              f"{STOP_TIMEOUT:g} s and was killed with SIGKILL"))
            others = [pid for pid in stopped.killed if pid != proc.pid]
            if others:
                request.node.warn(PmapWarning(
                    f"pmap_spawn: processes that {program!r} (PID {proc.pid}) started ignored SIGTERM for "
                    f"{STOP_TIMEOUT:g} s and were killed with SIGKILL: PID {', '.join(map(str, others))}"))


#: Signals that mean a process crashed (rather than was stopped): the fixture warns of them.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


def pmap_attach(request: pytest.FixtureRequest) -> Callable[..., Probe]:
    """`pmap_attach(pid, tree=False)` returns a `Probe` on a running process (with `tree=True`, a
    `TreeProbe` on it and all its descendants), which is never stopped by us."""
    why = request.config.stash[SESSION].unavailable
    if why:
        pytest.skip(why)

    def attach(pid: int, *, tree: bool = False) -> Probe:
        _check_tree("pmap_attach", tree)
        return _probe(request, pid, tree)

    return attach


def explain(op: str, left: object, right: object) -> Optional[list[str]]:
    """`pytest_assertrepr_compare` for a comparison with a `Reading`: what it measured, and the diff
    that explains it; None for any other comparison."""
    reading = left if isinstance(left, Reading) else right if isinstance(right, Reading) else None
    if reading is None:
        return None
    other = right if reading is left else left
    shown = Size(other) if isinstance(other, (int, str)) and not isinstance(other, bool) else other
    first = f"{reading.what} {left if reading is left else shown} {op} {right if reading is right else shown}"
    try:
        explanation = reading.brief()
    except PmapError as exc:
        explanation = f"(no diff: {exc})"
    return [first, *explanation.rstrip("\n").splitlines()]
