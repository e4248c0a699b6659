"""Faults of the second round on live processes: what is true of a process that exits, starts a
new program or is a kernel thread, and what becomes of the processes a test starts. See
docs/faults.md, "Round two: truth and processes"."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import warnings

import pytest
from conftest import PMAP, Forks

from pytest_pmap import MapDiff, NotSupported, PmapError, PmapWarning, Probe, ProcessGone, ProcFS, snapshot


def test_a_process_that_starts_a_new_program_while_it_is_read_gives_one_whole_map(forks: Forks) -> None:
    # The kernel ends a read of the old program's map early when execve lets go of it, and a read
    # started before execve can carry the old program's name over the new one's map. The new
    # program's map grows as it starts (the loader maps its libraries): any of its states is true.
    python = snapshot(forks.waiting)
    chance = random.Random(15)
    wrong: list[str] = []
    for i in range(300):
        pid = forks.go(f"exec {chance.randrange(8_000)}")
        snap = snapshot(pid, detail=i % 4 != 0)  # never ProcessGone: the process lives on
        comm = b"python" if len(snap.mappings) > 1000 else b"sleep"
        whole = snap.mappings[-1].start == python.mappings[-1].start  # [vsyscall]: a read cut short loses it
        if not whole or snap.comm != comm or (comm == b"python" and len(snap.mappings) < len(python.mappings) - 8):
            wrong.append(f"PID {pid} ({snap.comm!r}): {len(snap.mappings)} mappings, the last {snap.mappings[-1].name}")
    assert not wrong, f"{len(wrong)} maps of 300 were cut short or named for the other program: {wrong[:5]}"
    assert os.path.exists(f"/proc/{pid}")


def _a_kernel_thread() -> int:
    """The PID of a kernel thread (kthreadd, PID 2, where this PID namespace shows it)."""
    for name in sorted(os.listdir("/proc"), key=lambda n: int(n) if n.isdigit() else 1 << 62):
        if not name.isdigit():
            continue
        try:
            stat = ProcFS().stat(int(name))
        except PmapError:
            continue
        if stat.is_kernel_thread:
            return int(name)
    pytest.skip("no kernel thread is visible in this PID namespace")


def test_a_kernel_thread_is_named_as_such_and_listed_as_pmap_lists_it() -> None:
    kthread = _a_kernel_thread()
    message = f"^PID {kthread} is a kernel thread \\(\\[.+\\]\\): kernel threads have no user memory map"
    for detail in (True, False):
        with pytest.raises(NotSupported, match=message):
            snapshot(kthread, detail=detail)
    with pytest.raises(NotSupported, match=message):
        Probe(kthread)  # pmap_attach(kthread)
    for command in (["watch", str(kthread), "-c", "1"], ["snapshot", str(kthread), "-o", os.devnull],
                    ["diff", str(kthread), str(kthread)]):
        done = subprocess.run([sys.executable, "-m", "pytest_pmap", *command], capture_output=True, text=True)
        assert done.returncode == 1 and not done.stdout, (command, done.stdout)
        assert done.stderr.startswith(f"pytest-pmap {command[0]}: PID {kthread} is a kernel thread ("), done.stderr
        assert done.stderr.count("\n") == 1
    if PMAP is not None:  # pmap lists it: the header line and an empty map
        for fmt in ([], ["-x"], ["-X"], ["-d"]):
            ours = subprocess.run([sys.executable, "-m", "pytest_pmap", *fmt, str(kthread)], capture_output=True)
            theirs = subprocess.run([PMAP, *fmt, str(kthread)], capture_output=True)
            assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_a_diff_of_two_different_processes_warns_as_the_command_line_says(pytester: pytest.Pytester) -> None:
    ours = snapshot()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        theirs = snapshot(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    why = (f"the two snapshots are of different processes (PID {ours.pid} started at tick {ours.start_time}, "
           f"PID {theirs.pid} at tick {theirs.start_time})")
    with pytest.warns(PmapWarning) as caught:
        theirs.diff(ours)
    assert [str(w.message) for w in caught] == [f"{why}: the diff compares two unrelated memory maps"]
    assert caught[0].filename == __file__  # the caller's line, not ours
    reused = dataclasses.replace(ours, start_time=ours.start_time + 1)  # the same PID, another process
    with pytest.warns(PmapWarning, match=r"PID \d+ started at tick \d+, PID \d+ at tick \d+\): the diff"):
        MapDiff.between(ours, reused)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snapshot().diff(ours)  # one process: no warning
    # The command line says the same, once, as a note.
    ours.save(pytester.path / "ours.json")
    theirs.save(pytester.path / "theirs.json")
    done = subprocess.run([sys.executable, "-m", "pytest_pmap", "diff", "ours.json", "theirs.json"],
                          capture_output=True, text=True, cwd=pytester.path)
    assert done.returncode == 0 and done.stderr == f"pytest-pmap diff: note: {why}\n"
    # The library warns without importing pytest; in pytest, -W error::pytest_pmap.PmapWarning
    # makes the warning a failure.
    code = ("import sys, warnings, pytest_pmap\n"
            "warnings.simplefilter('error', pytest_pmap.PmapWarning)\n"
            "a, b = pytest_pmap.Snapshot.load('ours.json'), pytest_pmap.Snapshot.load('theirs.json')\n"
            "try:\n    b.diff(a)\nexcept pytest_pmap.PmapWarning as w:\n    print('error:', w)\n"
            "print('pytest' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=pytester.path)
    assert done.stdout == f"error: {why}: the diff compares two unrelated memory maps\nFalse\n", done.stderr
    pytester.makepyfile("""
        from pytest_pmap import Snapshot

        def test_diff():
            Snapshot.load("theirs.json").diff(Snapshot.load("ours.json"))
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1, warnings=1)
    strict = pytester.runpytest_subprocess("-W", "error::pytest_pmap.PmapWarning")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*PmapWarning: the two snapshots are of different processes*"])


GROW_AND_EXIT = "import sys; sys.stdin.readline(); kept = bytearray(50 << 20); sys.exit(3)"


def test_a_process_that_exits_before_any_reading_has_unknown_growth_not_zero(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import subprocess, sys

        def test_grows_50_mib_and_exits(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", {GROW_AND_EXIT!r}], stdin=subprocess.PIPE)
            p.process.stdin.write(b"\\n")
            p.process.stdin.close()
            p.process.wait()
            assert p.growth.uss < 1 << 20
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *ProcessGone: PID * exited with status 3 before it could be read after its "
                                 "baseline: what it used since is unknown, not zero; read it while it runs*"])
    # A process we watch but did not start (pmap_attach): the same, without its status.
    child = subprocess.Popen([sys.executable, "-c", GROW_AND_EXIT], stdin=subprocess.PIPE)
    assert child.stdin is not None
    probe = Probe(child.pid)
    child.stdin.write(b"\n")
    child.stdin.close()
    child.wait()
    for reading in ("uss_growth", "rss", "peak_rss"):
        with pytest.raises(ProcessGone, match=f"^PID {child.pid} exited before it could be read after its baseline"):
            probe.reading(reading)
    with pytest.raises(ProcessGone, match="before it could be read after its baseline"):
        probe.diff()


def test_a_new_baseline_of_a_process_that_has_ended_is_an_error_not_its_last_reading() -> None:
    child = subprocess.Popen([sys.executable, "-c", GROW_AND_EXIT], stdin=subprocess.PIPE)
    assert child.stdin is not None
    probe = Probe(child.pid)
    probe.process = child
    probe.rss  # noqa: B018 - a reading after the baseline: readings may fall back on it once the process ends
    child.stdin.write(b"\n")
    child.stdin.close()
    child.wait()
    assert probe.rss > 0 and probe.ended == f"PID {child.pid} exited with status 3: readings are from its last snapshot"
    with pytest.raises(ProcessGone, match=f"^PID {child.pid} exited with status 3: no new baseline can be taken"):
        probe.mark()
    assert probe.baseline is not probe.last  # the old baseline stays
