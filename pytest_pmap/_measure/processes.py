"""The processes a test starts, and everything they start: found, stopped and reaped together.

`start()` starts a process so that its descendants can be found later; `stop()` stops it and every
one of them (SIGTERM, then SIGKILL after a timeout) and reaps them; `stop_all()` does that for every
process still running, and runs when the interpreter exits and when this process gets SIGTERM. No
pytest here: the `pmap_spawn` fixture is built on it, and so can a process tree be.

How the descendants are found:

- While a process runs, the kernel lists its children in `/proc/PID/task/TID/children`; the tree
  below a spawned process is walked through those files (`ProcFS.children`).
- A process whose parent exits is handed to the nearest ancestor that is a "child subreaper", or to
  init. While any process it started runs, this process makes itself a subreaper
  (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux 3.4+), so what a spawned tree leaves orphaned, a daemon that
  forked twice and called `setsid` included, becomes a child of this process: it can be found, and,
  once it exits, reaped here rather than by init. The previous setting is restored when the last
  spawned process has been stopped.
- To tell such orphans from the children a test starts by other means, each spawned process gets
  the environment variable `PYTEST_PMAP_SPAWNED` (this process's PID and a number), which its
  descendants inherit: a child of this process that carries it belongs to that spawned process, and
  so does the tree below it.
- Every descendant found is remembered by its PID and start time while it is there: one that
  replaced its environment (`env -i`), found below its parent, is still found once that parent
  has exited. One never found before its parent exited cannot be told apart; neither can one that
  became a zombie before it was first seen (its environment is gone with its memory), which then
  waits for this process to exit.

Each process found is named by its PID and its start time, so a PID reused meanwhile is never
signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Optional, Union

from .._engine.procfs import ProcFS
from ..errors import PmapError

__all__ = ["COOKIE", "Stopped", "descendants", "end_with", "start", "stop", "stop_all"]

COOKIE = "PYTEST_PMAP_SPAWNED"
"""The environment variable that marks a spawned process and everything it starts."""

_PROC = ProcFS("/proc")  # the processes we start are in our own procfs, whatever PYTEST_PMAP_PROCFS says
_NUMBERS = itertools.count(1)
_LIVE: dict[subprocess.Popen[bytes], bytes] = {}
"""Every process started and not yet stopped, with its cookie (`PYTEST_PMAP_SPAWNED=...`)."""
_SEEN: dict[subprocess.Popen[bytes], dict[int, int]] = {}
"""For each process of `_LIVE`, its descendants found so far ({PID: start time}), while they are there."""
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 1, 36, 37
_PARENT: list[int] = []
"""The process this one cannot go on without (`end_with`), as recorded when this one started."""
_SUBREAPER_BEFORE: list[int] = []
"""Whether this process was a subreaper before the first `start()`, while it is one for us."""

Handler = Union[Callable[[int, Optional[FrameType]], Any], int, None]
#: Signals that end pytest without its teardown, and so would orphan what it started: CI systems stop
#: a job with SIGTERM; a closed terminal or SSH session sends SIGHUP. (Ctrl-C, a KeyboardInterrupt,
#: already ends in the fixtures' teardown.)
_GUARDED = (signal.SIGTERM, signal.SIGHUP)
_HANDLERS_BEFORE: dict[int, Handler] = {}
"""The handlers ours replaced, by signal, while ours are installed."""
_STARTING: list[bool] = []
"""Not empty while `start()` is starting a process that is not in `_LIVE` yet."""
_DEFERRED: list[int] = []
"""Guarded signals that came while a process was being started: acted on once it is registered."""


@dataclass(frozen=True)
class Stopped:
    """What it took to stop a spawned process and its descendants."""

    descendants: int
    """How many processes it had started that were still there when it was stopped."""
    killed: tuple[int, ...]
    """The PIDs that outlived SIGTERM by the timeout and were killed with SIGKILL (the spawned one
    first, if it was one of them)."""


def start(argv: Union[str, bytes, os.PathLike[str], Sequence[Union[str, bytes, os.PathLike[str]]]],
          **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **popen_kwargs)`, marked so that what it starts can be found."""
    env = popen_kwargs.pop("env", None)
    env = dict(os.environ if env is None else env)
    cookie = f"{os.getpid()}.{next(_NUMBERS)}"
    env[COOKIE.encode() if any(isinstance(key, bytes) for key in env) else COOKIE] = cookie
    _STARTING.append(True)  # until it is registered, a guarded signal waits (see `_on_signal`)
    try:
        if not _LIVE:
            _become_subreaper()
            _guard_signals()
            _watch_parent()
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, env=env, **popen_kwargs)
        _LIVE[proc] = f"{COOKIE}={cookie}".encode()
    except BaseException:
        if not _LIVE:
            _let_go()
        raise
    finally:
        _STARTING.pop()
        _act_on_deferred()
    return proc


def descendants(proc: subprocess.Popen[bytes]) -> dict[int, int]:
    """Every process `proc` started that is still there (zombies included), as {PID: start time}.

    Each one found is remembered (by PID and start time) until it is gone: one that cleared its
    environment, found once below its parent, is still found once that parent has exited."""
    cookie = _LIVE.get(proc)
    seen = _SEEN.setdefault(proc, {}) if cookie is not None else {}
    found = {pid: start for pid, start in seen.items() if _is_there(pid, start) is not None}
    if cookie is not None:  # orphans handed to us as their subreaper, and the trees below them
        for pid in _PROC.children(os.getpid()):
            start = _start_time(pid)
            if pid != proc.pid and pid not in found and start is not None and _carries(pid, cookie):
                found[pid] = start
    frontier = [*found, *([proc.pid] if proc.returncode is None else [])]
    while frontier:
        for child in _PROC.children(frontier.pop()):
            start = _start_time(child)
            if start is not None and child not in found:
                found[child] = start
                frontier.append(child)
    found.pop(proc.pid, None)
    if cookie is not None:
        seen.clear()
        seen.update(found)
    return found


def stop(proc: subprocess.Popen[bytes], timeout: float) -> Stopped:
    """Stop `proc` and everything it started: SIGTERM (and SIGCONT, so that a stopped process acts
    on it), SIGKILL to those still running after `timeout` seconds; then reap them all."""
    seen = descendants(proc)
    ever = dict(seen)
    _signal_root(proc, signal.SIGTERM)
    _signal_all(seen, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pause = 0.0002  # most processes end within a millisecond of SIGTERM: look soon, then less often
    while True:
        _reap_ours(ever)
        done = _reaped(proc)
        new = {pid: start for pid, start in descendants(proc).items() if pid not in ever}
        _signal_all(new, signal.SIGTERM)  # started while the others stopped
        ever.update(new)
        running = _running(ever)
        if (done and not running) or time.monotonic() >= deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    killed: list[int] = []
    if not _reaped(proc):
        _signal_root(proc, signal.SIGKILL)
        killed.append(proc.pid)
    for _ in range(1000):  # a process may fork between a look and its SIGKILL: look again until none is left
        ever.update(descendants(proc))
        running = _running(ever)
        if not running:
            break
        for pid in running:
            if _kill(pid, ever[pid], signal.SIGKILL):
                killed.append(pid)
        time.sleep(0.001)
    while not _reaped(proc):
        time.sleep(0.005)
    deadline = time.monotonic() + 5
    while _reap_ours(ever) and time.monotonic() < deadline:  # zombies handed to us as their parents died
        time.sleep(0.005)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):  # nobody can read them after the test
        if pipe is not None:
            pipe.close()
    _LIVE.pop(proc, None)
    _SEEN.pop(proc, None)
    if not _LIVE:
        _let_go()
    return Stopped(descendants=len(ever), killed=tuple(dict.fromkeys(killed)))


def end_with(parent: int) -> None:
    """This process works for `parent` (an xdist worker for its controller, `parent` recorded when this
    one started) and cannot go on without it: while spawned processes run, `parent`'s death comes to
    this process as SIGTERM (`prctl(PR_SET_PDEATHSIG)`), which stops them before it ends.

    Without it, SIGTERM to the controller alone (`docker stop`, a CI runner's cancel) ends it and
    leaves the workers running their tests, and dying later without teardown, their spawned trees
    running on under init."""
    _PARENT[:] = [parent]


def stop_all(timeout: float = 0.5) -> None:
    """Stop every spawned process still running, and what it started (see `stop`)."""
    for proc in list(_LIVE):
        stop(proc, timeout)


atexit.register(stop_all)  # pytest interrupted before a fixture's teardown ran, for one


# -- processes found ----------------------------------------------------------------------------------


def _start_time(pid: int) -> Optional[int]:
    try:
        return _PROC.stat(pid).start_time
    except PmapError:
        return None


def _carries(pid: int, cookie: bytes) -> bool:
    """True when process `pid` has `cookie` (`NAME=value`) in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return cookie in f.read().split(b"\0")
    except OSError:
        return False


def _is_there(pid: int, start: int) -> Optional[str]:
    """The state of process `pid` if it is the one that started at `start` (None if not there)."""
    try:
        stat = _PROC.stat(pid)
    except PmapError:
        return None
    return stat.state if stat.start_time == start else None


def _running(processes: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in processes.items() if _is_there(pid, start) not in (None, "Z", "X")}


def _kill(pid: int, start: int, sig: int) -> bool:
    """Send `sig` to `pid` if it is still the process that started at `start`."""
    if _is_there(pid, start) is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _signal_all(processes: dict[int, int], sig: int) -> None:
    for pid, start in processes.items():
        if _kill(pid, start, sig) and sig == signal.SIGTERM:
            _kill(pid, start, signal.SIGCONT)


def _signal_root(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.returncode is None:
        try:
            os.kill(proc.pid, sig)  # not reaped, so its PID is still its own
            if sig == signal.SIGTERM:
                os.kill(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def _reaped(proc: subprocess.Popen[bytes]) -> bool:
    """Reap `proc` if it has exited; True once it is reaped. `proc.poll()` answers None while
    this thread is inside `proc.wait()` (a SIGTERM handler that interrupted it), so then it is
    reaped here, and its status recorded."""
    if proc.poll() is not None:
        return True
    try:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return proc.returncode is not None
    if pid == 0:
        return False
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True


def _reap_ours(processes: dict[int, int]) -> bool:
    """Reap those of `processes` that are our children (handed to us as their subreaper) and have
    exited; True while some of them are still there."""
    left = False
    for pid, start in processes.items():
        state = _is_there(pid, start)
        if state in ("Z", "X"):
            with contextlib.suppress(ChildProcessError):  # not ours: its parent reaps it
                os.waitpid(pid, os.WNOHANG)
            state = _is_there(pid, start)
        left = left or state is not None
    return left


# -- this process, while processes it started run ---------------------------------------------------------


_LIBC: list[Any] = []


def _prctl(option: int, value: int) -> Optional[int]:
    """prctl(option, value), or None where it cannot be called."""
    import ctypes

    try:
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None, use_errno=True))
        libc = _LIBC[0]
        if option == _PR_GET_CHILD_SUBREAPER:
            out = ctypes.c_int(0)
            return None if libc.prctl(option, ctypes.byref(out), 0, 0, 0) else out.value
        return None if libc.prctl(option, value, 0, 0, 0) else 0
    except (OSError, AttributeError):
        return None


def _become_subreaper() -> None:
    before = _prctl(_PR_GET_CHILD_SUBREAPER, 0)
    if before is not None and _prctl(_PR_SET_CHILD_SUBREAPER, 1) is not None:
        _SUBREAPER_BEFORE.append(before)


def _watch_parent() -> None:
    """While spawned processes run, the death of the parent given to `end_with` is SIGTERM to this
    process (only where our SIGTERM handler is set: it is what stops them)."""
    if not _PARENT or signal.SIGTERM not in _HANDLERS_BEFORE or _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) is None:
        return
    if os.getppid() != _PARENT[0]:  # it died before the prctl: its death will not be signalled, so act on it now
        _DEFERRED.append(signal.SIGTERM)  # (`start()` is starting a process: acted on once it is registered)


def _let_go() -> None:
    """The last spawned process is stopped: the subreaper setting, the parent's death signal and the
    SIGTERM handler as they were."""
    if _SUBREAPER_BEFORE:
        _prctl(_PR_SET_CHILD_SUBREAPER, _SUBREAPER_BEFORE.pop())
    if _PARENT:
        _prctl(_PR_SET_PDEATHSIG, 0)
    if _HANDLERS_BEFORE and threading.current_thread() is threading.main_thread():
        for signum, before in _HANDLERS_BEFORE.items():
            if signal.getsignal(signum) is _on_signal:  # unless someone replaced ours meanwhile
                signal.signal(signum, before)
        _HANDLERS_BEFORE.clear()


def _guard_signals() -> None:
    """Stop the spawned processes when this process gets a signal in `_GUARDED`. Only where a
    handler can be set (the main thread), and not for a signal that is ignored."""
    if _HANDLERS_BEFORE or threading.current_thread() is not threading.main_thread():
        return
    for signum in _GUARDED:
        before = signal.getsignal(signum)
        if before is None or before == signal.SIG_IGN:  # set outside Python, or ignored on purpose: leave it
            continue
        signal.signal(signum, _on_signal)
        _HANDLERS_BEFORE[signum] = before


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    if _STARTING:  # a process is being started: stopping everything now would miss it, and pytest would
        _DEFERRED.append(signum)  # die with its tree running; `start()` acts on the signal once it is registered
        return
    before = _HANDLERS_BEFORE.get(signum, signal.SIG_DFL)
    stop_all()  # which puts the handlers before ours back
    if callable(before):
        before(signum, frame)
    else:  # the default: this process ends by the signal, as it would have without us
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _act_on_deferred() -> None:
    """Act on a guarded signal that came while a process was being started, now that it is registered:
    sent again, it runs `_on_signal` as it would have (every process stopped, then this one ends by it)."""
    while _DEFERRED:
        os.kill(os.getpid(), _DEFERRED.pop(0))
