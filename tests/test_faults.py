"""Faults on live processes: exits in the middle of a read, permissions, bad PIDs. Never a
traceback, never a silent zero, never a shortened map."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pytest_pmap import ProcessGone, snapshot

#: The mappings every complete map of `sh` ends with: a read cut short loses them.
TAIL = {"[stack]", "[vdso]"}


def test_processes_exiting_while_they_are_read_give_a_whole_map_or_processgone() -> None:
    outcomes = {"complete": 0, "gone": 0}
    for i in range(1000):
        # The shell says it is ready (so it is past exec, whose half-built map is a true map too),
        # then exits as soon as it reads a line: we send one and read its map at once.
        victim = subprocess.Popen(["sh", "-c", "echo; read x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert victim.stdin is not None and victim.stdout is not None
        try:
            victim.stdout.readline()
            victim.stdin.write(b"\n")
            victim.stdin.flush()
            snap = snapshot(victim.pid, detail=i % 2 == 0)
        except ProcessGone as exc:
            assert str(victim.pid) in str(exc)
            outcomes["gone"] += 1
        else:
            names = {m.path for m in snap.mappings}
            assert TAIL <= names, f"PID {victim.pid}: a shortened map ({len(snap.mappings)} mappings: {names})"
            assert snap.mapped > 0 and snap.rss is not None and snap.rss > 0
            outcomes["complete"] += 1
        finally:
            victim.stdin.close()
            victim.stdout.close()
            victim.wait()
    assert outcomes["complete"] and outcomes["gone"], outcomes


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python that imported pytest_pmap as root and then became `nobody`."""
    prelude = ("import locale, os, pytest_pmap, pytest_pmap.cli, pytest_pmap._pmapcli\n"  # imported while files are readable
               "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_another_users_process_is_access_denied_with_the_way_out() -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        out = _as_nobody(f"""
            from pytest_pmap import AccessDenied, snapshot
            for detail in (True, False):
                try:
                    snapshot({victim.pid}, detail=detail)
                except AccessDenied as exc:
                    print("DENIED", exc)
                else:
                    print("READ")
        """)
    finally:
        victim.kill()
        victim.wait()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"DENIED PID {victim.pid}: reading /proc/") for line in lines), lines
    assert all("run as that user or as root (CAP_SYS_PTRACE)" in line for line in lines)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("pmap"),
                    reason="needs root, setpriv and procps pmap")
@pytest.mark.parametrize("fmt", ["-x", "-X", "-d"])
def test_the_command_line_is_refused_exactly_as_pmap_is(fmt: str) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        ours = _as_nobody(f"""
            import sys
            from pytest_pmap.cli import main
            sys.stdout.flush()
            sys.exit(main(["{fmt}", "{victim.pid}"]))
        """)
        theirs = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "pmap", fmt,
                                 str(victim.pid)], capture_output=True, text=True)
    finally:
        victim.kill()
        victim.wait()
    assert "Traceback" not in ours.stderr
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


@pytest.mark.parametrize("pid", [0, -1, "abc", True, 3.5])
def test_bad_pids_are_value_errors_naming_the_value(pid: object) -> None:
    with pytest.raises(ValueError, match=f"{pid!r} is not a PID"):
        snapshot(pid)  # type: ignore[arg-type]


def test_a_pid_at_or_above_pid_max_is_not_a_pid_here() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in (pid_max, pid_max + 1, 2**40):
        with pytest.raises(ValueError, match=rf"^{pid} is not a PID on this system: PIDs are below pid_max \({pid_max}\)$"):
            snapshot(pid)
    if not os.path.exists(f"/proc/{pid_max - 1}"):
        with pytest.raises(ProcessGone, match=f"PID {pid_max - 1} exited or is not visible here"):
            snapshot(pid_max - 1)  # a PID that could exist, but does not
