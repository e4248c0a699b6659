"""Faults of the second round on live processes: what is true of a process that exits, starts a
new program or is a kernel thread, and what becomes of the processes a test starts. See
docs/faults.md, "Round two: truth and processes"."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import PMAP, Forks

from pytest_pmap import MapDiff, NotSupported, PmapError, PmapWarning, Probe, ProcessGone, ProcFS, snapshot
from pytest_pmap._cli.pmap import main as pmap_main


def _read(pid: int, way: int, out: pytest.CaptureFixture[bytes]) -> tuple[bytes, int, int]:
    """Read `pid` by `snapshot()` (way 0), `snapshot(detail=False)` (1) or `pytest-pmap -x` (2):
    its command line, number of mappings and the last one's address. A command that cannot read
    the process fails the caller's test."""
    if way < 2:
        snap = snapshot(pid, detail=way == 0)  # never ProcessGone: the process lives on
        return snap.cmdline.encode(), len(snap.mappings), snap.mappings[-1].start
    status = pmap_main(["-x", str(pid)])
    lines = out.readouterr().out.splitlines()
    assert status == 0, lines
    return lines[0].split(b":   ", 1)[1], len(lines) - 4, int(lines[-3].split()[0], 16)


def test_a_process_that_starts_a_new_program_while_it_is_read_gives_one_whole_map(
    forks: Forks, capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    # The kernel ends a read of the old program's map early when execve lets go of it, and a read
    # started before execve can carry the old program's name over the new one's map. The new
    # program's map grows as it starts (the loader maps its libraries): any of its states is true.
    # Read by snapshot(), snapshot(detail=False) and `pytest-pmap -x` in turn.
    python = snapshot(forks.waiting)
    chance = random.Random(15)
    wrong: list[str] = []
    for i in range(300):
        pid = forks.go(f"exec {chance.randrange(8_000)}")
        cmdline, count, last = _read(pid, i % 3, capsysbinary)
        program = b"exit_race.py" if count > 1000 else b"sleep 600"
        whole = last == python.mappings[-1].start  # [vsyscall]: a read cut short loses it
        # inside execve there are no arguments yet: pmap shows the command name in brackets instead
        named = program in cmdline or (cmdline in (b"", b"[sleep]") and count < 1000)
        if not whole or not named or (count > 1000 and count < len(python.mappings) - 8):
            wrong.append(f"PID {pid} ({cmdline!r}): {count} mappings, the last at {last:x}")
    assert not wrong, f"{len(wrong)} maps of 300 were cut short or named for the other program: {wrong[:5]}"
    assert os.path.exists(f"/proc/{pid}")


def test_a_process_whose_main_thread_exits_while_it_is_read_is_not_exited(
    forks: Forks, capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    # The main thread exits (pthread_exit) while a thread runs on: the process lives, its map is
    # whole, and it is read through the live thread from then on (by the library: the command
    # lists it as pmap does, with an empty map, test_faults.py).
    whole = snapshot(forks.waiting)
    chance = random.Random(16)
    wrong: list[str] = []
    for i in range(100):
        pid = forks.go(f"thread {chance.randrange(8_000)}")
        try:
            _, count, last = _read(pid, i % 2, capsysbinary)
        except (ProcessGone, AssertionError) as exc:
            wrong.append(str(exc))
            continue
        if count < len(whole.mappings) - 8 or last != whole.mappings[-1].start:
            wrong.append(f"PID {pid}: {count} of {len(whole.mappings)} mappings")
    assert not wrong, f"{len(wrong)} of 100 live processes: {wrong[:3]}"

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


#: A daemon as daemons are made: fork, setsid, fork again, the middle one exits. The daemon
#: (ignoring SIGTERM if asked: "stubborn") records its PID and sleeps; the program prints "ready"
#: once it has, and stays in the foreground (or exits: "leave").
DAEMON = """
import os, signal, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        if "stubborn" in sys.argv:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(sys.argv[1], "a") as f:
            f.write(f"{os.getpid()}\\n")
        os.write(w, b"x")
        time.sleep(600)
    os._exit(0)
os.wait()
os.read(r, 1)
print("ready", flush=True)
if "leave" not in sys.argv:
    time.sleep(600)
"""


def _spawning_suite(pytester: pytest.Pytester, pids: Path) -> None:
    """A test file whose tests start processes that start others, recording every PID in `pids`,
    and a last test that fails if any of them is still there (running, or a zombie of pytest's)."""
    pytester.makeconftest("import pytest_pmap._plugin.fixtures\npytest_pmap._plugin.fixtures.STOP_TIMEOUT = 0.5\n")
    pytester.makepyfile(f"""
        import os, subprocess, sys, time
        PIDS = {str(pids)!r}
        DAEMON = {DAEMON!r}

        def record(*pids):
            with open(PIDS, "a") as f:
                f.write("".join(f"{{pid}}\\n" for pid in pids))

        def children(pid):
            return [int(c) for t in os.listdir(f"/proc/{{pid}}/task")
                    for c in open(f"/proc/{{pid}}/task/{{t}}/children").read().split()]

        def wait_for_children(pid, n):
            while len(children(pid)) < n:
                time.sleep(0.01)
            return children(pid)

        def test_a_shell_with_a_job_in_the_background(pmap_spawn):
            p = pmap_spawn(["sh", "-c", "sleep 600 & wait"])
            record(p.pid, *wait_for_children(p.pid, 1))

        def test_a_shell_run_with_shell_true(pmap_spawn):
            p = pmap_spawn("sleep 600 & sleep 601", shell=True)
            record(p.pid, *wait_for_children(p.pid, 2))

        def test_a_daemon_that_called_setsid(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", DAEMON, PIDS], stdout=subprocess.PIPE)
            p.process.stdout.readline()
            record(p.pid)

        def test_a_daemon_that_ignores_sigterm(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", DAEMON, PIDS, "stubborn"], stdout=subprocess.PIPE)
            p.process.stdout.readline()
            record(p.pid)

        def test_a_program_that_exits_and_leaves_its_daemon(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", DAEMON, PIDS, "leave"], stdout=subprocess.PIPE)
            p.process.stdout.readline()
            p.process.wait()
            record(p.pid)

        def test_zz_none_is_left():
            left = []
            for pid in map(int, open(PIDS).read().split()):
                try:
                    state = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0]
                except FileNotFoundError:
                    continue
                left.append((pid, state))
            assert not left
    """)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_everything_a_spawned_process_started_is_stopped_and_reaped(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    _spawning_suite(pytester, pids)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=6, warnings=1)
    result.stdout.fnmatch_lines(["*PmapWarning: pmap_spawn: processes that '*python*' (PID *) started ignored "
                                 "SIGTERM for 0.5 s and were killed with SIGKILL: PID *"])
    recorded = [int(pid) for pid in pids.read_text().split()]
    assert len(recorded) == 11
    assert not [pid for pid in recorded if _alive(pid)]


@pytest.mark.parametrize(("signame", "handler"), [("SIGTERM", "default"), ("SIGTERM", "its own"), ("SIGHUP", "default")])
def test_sigterm_to_pytest_stops_every_spawned_process_first(pytester: pytest.Pytester, signame: str, handler: str) -> None:
    """SIGTERM (how CI stops a job) and SIGHUP (a closed terminal or SSH session) end pytest without
    its teardown: what it spawned is stopped first."""
    signum = getattr(signal, signame)
    pids = pytester.path / "pids"
    if handler == "its own":  # a handler of the suite's: it runs after ours, and is back in place between tests
        pytester.makeconftest(f"""
            import os, signal
            def on_sigterm(signum, frame):
                open({str(pytester.path / "handled")!r}, "w").close()
                os._exit(7)
            signal.signal(signal.SIGTERM, on_sigterm)
        """)
    pytester.makepyfile(f"""
        import os, signal, subprocess, sys, time
        DAEMON = {DAEMON!r}
        BEFORE = signal.getsignal(signal.SIGTERM)

        def test_a_spawned_process_that_ends_with_its_test(pmap_spawn):
            pmap_spawn(["sleep", "600"])

        def test_the_sigterm_handler_is_the_suites_between_tests():
            assert signal.getsignal(signal.SIGTERM) is BEFORE

        def test_stopped_by_sigterm(pmap_spawn):
            shell = pmap_spawn(["sh", "-c", "sleep 600 & echo $!; wait"], stdout=subprocess.PIPE)
            daemon = pmap_spawn([sys.executable, "-c", DAEMON, {str(pids)!r}], stdout=subprocess.PIPE)
            daemon.process.stdout.readline()
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{shell.pid}}\\n{{shell.process.stdout.readline().decode()}}{{daemon.pid}}\\n")
            os.rename({str(pids)!r}, {str(pids)!r} + ".done")
            time.sleep(600)
    """)
    pytest_run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
                                   "-q"], cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        done = pytester.path / "pids.done"
        deadline = time.monotonic() + 60
        while not done.exists() and pytest_run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), pytest_run.communicate(timeout=60)[0].decode()
        pytest_run.send_signal(signum)
        status = pytest_run.wait(30)
    finally:
        if pytest_run.poll() is None:
            pytest_run.kill()
            pytest_run.wait()
        assert pytest_run.stdout is not None
        pytest_run.stdout.close()
    spawned = [int(pid) for pid in done.read_text().split()]
    assert len(spawned) == 4
    assert not [pid for pid in spawned if _alive(pid)]
    if handler == "its own":
        assert status == 7 and (pytester.path / "handled").exists()
    else:
        assert status == -signum


def test_a_spawned_process_stopped_by_sigstop_acts_on_sigterm_at_teardown(pytester: pytest.Pytester) -> None:
    # A stopped process that handles SIGTERM acts on it only once continued: it used to wait out
    # the timeout, take SIGKILL and be reported as ignoring SIGTERM. Its descendants likewise.
    # The default timeout (5 s): with 2 s a busy CI machine once let it run out (1 run in about 10).
    pytester.makepyfile("""
        import os, signal, subprocess, sys

        GRACEFUL = ("import os, signal, sys, time\\n"
                    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\\n"
                    "if os.fork() == 0:\\n"
                    "    print(os.getpid(), flush=True)\\n"
                    "time.sleep(600)\\n")

        def test_stopped(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", GRACEFUL], stdout=subprocess.PIPE)
            child = int(p.process.stdout.readline())
            os.kill(child, signal.SIGSTOP)
            os.kill(p.pid, signal.SIGSTOP)
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "SIGKILL" not in result.stdout.str()
