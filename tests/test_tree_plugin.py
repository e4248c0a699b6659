"""Trees in the plugin: `TreeProbe` (what `pmap_spawn(..., tree=True)` and `pmap_attach(pid, tree=True)`
return), the marker's `tree=True`, failing budgets that name the process that grew, and teardown
of a spawned tree, daemons included, also when pytest gets SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import HELPERS
from forked import running

from pytest_pmap import MiB, ProcessGone
from pytest_pmap._engine.tree import TreeSnapshot
from pytest_pmap._engine.treediff import TreeDiff
from pytest_pmap._measure import processes
from pytest_pmap._measure.treeprobe import TreeProbe

TREE = str(HELPERS / "forked_tree.py")


class Spawned:
    """forked_tree.py started as `pmap_spawn` starts a process, with a `TreeProbe` on it; `stop()`
    stops everything it started, as the fixture's teardown does."""

    def __init__(self, *args: str) -> None:
        self.proc = processes.start([sys.executable, TREE, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.pids: dict[str, Any] = json.loads(self.proc.stdout.readline())
        self.probe = TreeProbe(self.proc.pid, members=lambda: processes.descendants(self.proc), process=self.proc)

    def ask(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer.startswith(b"ok "), answer
        self.pids = json.loads(answer[3:])

    def stop(self) -> None:
        processes.stop(self.proc, 5)


@pytest.fixture
def spawned() -> Any:
    started: list[Spawned] = []

    def start(*args: str) -> Spawned:
        started.append(Spawned(*args))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def test_the_probe_covers_the_tree_and_a_worker_started_later_counts_as_grown(spawned: Any) -> None:
    s = spawned("8", "2", "--grandchild")
    probe: TreeProbe = s.probe
    base = probe.mark()
    assert isinstance(base, TreeSnapshot)
    assert set(base.processes) == {s.pids["master"], *s.pids["workers"], s.pids["grandchild"]}
    s.ask("fork")
    new = s.pids["workers"][-1]
    diff = probe.diff()
    assert isinstance(diff, TreeDiff) and list(diff.appeared) == [new] and not diff.exited
    now = diff.after
    assert probe.last is now and now.processes[new].ppid == s.pids["master"]
    growth = probe.reading("rss_growth", now)
    assert growth == now.rss - base.rss and growth >= now.processes[new].rss - MiB  # the others hardly moved
    assert probe.reading("rss", now) == sum(p.rss for p in now.processes.values())
    new_mappings = probe.new_mappings(after=now)
    assert {c.pid for c in new_mappings} == {new}  # every mapping of the new worker is new, nothing else
    peak = probe.reading("peak_rss", now)
    # (VmHWM is at least VmRSS, the kernel's own counter; smaps' Rss, a page walk, may differ a little)
    assert peak == sum(p.status_size("VmHWM") or 0 for p in now.processes.values()) >= (now.status_size("VmRSS") or 0)
    assert probe.reading("peak_growth", now) == peak - base.status_size("VmRSS")


def test_the_peaks_are_reset_in_every_process_at_the_baseline(spawned: Any) -> None:
    s = spawned("1", "1")
    s.ask("grow 32")  # worker 0's peak is now 32 MiB above its later RSS
    worker = s.pids["workers"][0]
    before = Path(f"/proc/{worker}/status").read_text()
    probe: TreeProbe = s.probe
    probe.mark()
    after = probe.baseline.processes[worker]
    assert "VmHWM" in before and after.peak_rss is not None and after.rss is not None
    assert abs(after.peak_rss - after.rss) < 4 * MiB  # reset to the RSS now (32 MiB are still held)
    assert probe.peak_note == ""


def test_a_tree_whose_root_exits_is_what_remains_of_it(spawned: Any) -> None:
    s = spawned("2", "1", "--daemon")
    probe: TreeProbe = s.probe
    daemon = s.pids["daemon"]
    assert daemon in probe.snapshot().processes  # an orphan handed to pytest, found by its mark
    assert s.proc.stdin is not None
    s.proc.stdin.write(b"exit\n")  # no answer: the daemon holds the master's stdout open
    s.proc.stdin.flush()
    s.proc.wait()
    while any(map(running, [s.pids["master"], *s.pids["workers"]])):
        time.sleep(0.02)
    tree = probe.snapshot()
    assert tree.pid == s.proc.pid and tree.root.mapped == 0 and tree.root.state == "X"
    assert daemon in tree.processes and tree.rss == tree.processes[daemon].rss
    assert probe.ended == ""
    os.kill(daemon, signal.SIGKILL)
    while running(daemon):
        time.sleep(0.02)
    assert probe.snapshot() is tree  # nothing left: readings are from the last snapshot
    assert probe.ended.endswith("readings are from its last snapshot")


def test_a_process_that_cleared_its_environment_is_followed_and_stopped_once_its_parent_exits() -> None:
    token = _token()
    proc = processes.start(["sh", "-c", f"env -i /bin/sleep {token} & read x"], stdin=subprocess.PIPE)
    try:
        probe = TreeProbe(proc.pid, members=lambda: processes.descendants(proc), process=proc)
        deadline = time.monotonic() + 20
        while not _with_token(token) and time.monotonic() < deadline:
            time.sleep(0.01)
        (sleeper,) = _with_token(token)
        assert sleeper in probe.snapshot().processes  # below sh: found
        assert proc.stdin is not None
        proc.stdin.close()  # sh exits; its orphan, without the mark, is handed to this process
        proc.wait()
        tree = probe.snapshot()
        assert list(tree.processes) == [proc.pid, sleeper] and tree.root.state == "X" and not tree.exited
        assert probe.ended == "" and tree.rss == tree.processes[sleeper].rss
        processes.stop(proc, 5)
        assert not running(sleeper)
    finally:
        processes.stop(proc, 5)
        _kill_with_token(token)


def _started(token: str, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while len(_with_token(token)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return _with_token(token)


def test_an_attached_tree_whose_root_exits_is_what_remains_of_it() -> None:
    token = _token()
    root = subprocess.Popen(["sh", "-c", f"sleep {token} & sleep {token} & wait"])
    try:
        sleeps = _started(token, 2)
        probe = TreeProbe(root.pid)  # what pmap_attach(pid, tree=True) returns
        probe.mark()
        assert set(probe.baseline.processes) == {root.pid, *sleeps}
        root.kill()  # its children are handed to init (or a subreaper): out of its kernel tree
        root.wait()
        tree = probe.snapshot()
        assert set(tree.processes) == {root.pid, *sleeps} and tree.root.state == "X" and tree.root.rss == 0
        assert probe.rss == sum(tree.processes[pid].rss for pid in sleeps) > 0 and probe.ended == ""
    finally:
        root.kill()
        root.wait()
        _kill_with_token(token)


def test_an_attached_tree_that_ended_before_its_first_reading_says_so() -> None:
    token = _token()
    root = subprocess.Popen(["sh", "-c", f"sleep {token} & wait"])
    try:
        (sleep,) = _started(token, 1)
        probe = TreeProbe(root.pid)
        root.kill()
        root.wait()
        _kill_with_token(token)
        while running(sleep):
            time.sleep(0.01)
        with pytest.raises(ProcessGone, match=f"^PID {root.pid} exited, and every process of its tree exited too, "
                           "before the tree could be read after its baseline: what they used since is unknown"):
            probe.snapshot()
    finally:
        root.kill()
        root.wait()
        _kill_with_token(token)


def test_a_tree_gone_before_its_first_reading_is_process_gone() -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    with pytest.raises(ProcessGone, match=f"PID {done.pid}"):
        TreeProbe(done.pid)


# -- in pytest -----------------------------------------------------------------------------------------


def test_a_failing_tree_budget_names_the_process_that_grew_and_shows_its_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import json, subprocess, sys
        import pytest

        @pytest.mark.pmap(tree=True, uss_growth="80MiB")
        def test_a_worker_grows(pmap_spawn):
            p = pmap_spawn([sys.executable, {TREE!r}, "1", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            pids = json.loads(p.process.stdout.readline())
            p.process.stdin.write(b"grow 96\\n")
            p.process.stdin.flush()
            p.process.stdout.readline()
            print("WORKER", pids["workers"][0], "MASTER", pids["master"])

        @pytest.mark.pmap(uss_growth="80MiB")
        def test_without_tree_the_worker_is_not_counted(pmap_spawn):
            p = pmap_spawn([sys.executable, {TREE!r}, "1", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            p.process.stdout.readline()
            p.process.stdin.write(b"grow 96\\n")
            p.process.stdin.flush()
            p.process.stdout.readline()
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    worker, master = (int(w) for w in out.split("WORKER ")[1].split()[::2][:2])
    result.stdout.fnmatch_lines([
        "pmap budget exceeded (1 limit):",
        "  uss_growth: *K > 81920K (limit from marker)",
        f"grew most: PID {worker} (*forked_tree.py 1 2), child of {master}, appeared: uss +9*K",
        "*PID*PPID*RSS*PSS*USS*USS growth*Command",
        f"+{worker:>7} {master:>8} *(appeared)",
        f"{worker}:   *forked_tree.py 1 2  (pmap diff *",
        "+ * +98304 * rw---   [[] anon ]",
    ])


def test_a_failing_peak_budget_names_the_process_whose_peak_rose_most(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import json, subprocess, sys
        import pytest

        @pytest.mark.pmap(tree=True, peak_rss="80MiB")
        def test_a_worker_spikes(pmap_spawn):
            p = pmap_spawn([sys.executable, {TREE!r}, "1", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            pids = json.loads(p.process.stdout.readline())
            p.process.stdin.write(b"spike 100\\n")  # the second worker touches 100 MiB and frees them
            p.process.stdin.flush()
            p.process.stdout.readline()
            print("WORKER", pids["workers"][1], "MASTER", pids["master"])
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    worker, master = (int(w) for w in out.split("WORKER ")[1].split()[::2][:2])
    result.stdout.fnmatch_lines([
        "pmap budget exceeded (1 limit):",
        "  peak_rss: *K > 81920K (limit from marker)",
        f"grew most: PID {worker} (*forked_tree.py 1 2), child of {master}, appeared: peak_rss *K, +*K since the baseline",
        "*PID*PPID*RSS*PSS*USS*PEAK growth*Command",
    ])
    line = next(line for line in out.splitlines() if line.startswith("grew most:"))
    assert int(line.rsplit("+", 1)[1].split("K")[0]) >= 100 * 1024  # its peak rose by the 100 MiB it freed


def test_an_assertion_on_a_tree_reading_explains_itself_with_the_tree(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import json, subprocess, sys

        def test_growth(pmap_spawn):
            p = pmap_spawn([sys.executable, {TREE!r}, "1", "2"], tree=True, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
            pids = json.loads(p.process.stdout.readline())
            p.mark()
            p.process.stdin.write(b"grow 24\\n")
            p.process.stdin.flush()
            p.process.stdout.readline()
            print("WORKER", pids["workers"][0])
            assert p.growth.uss < "8MiB"
    """)
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(failed=1)
    worker = int(result.stdout.str().split("WORKER ")[1].split()[0])
    result.stdout.fnmatch_lines([
        "E       assert growth.uss 2*K < 8192K",
        f"E         grew most: PID {worker} (*forked_tree.py 1 2), child of *: uss +2*K",
        "E           Address            Kbytes      RSS    Dirty Mode  Mapping",
        "E         + * +24576 *[[] anon ]",
        "*pmap: PID * since its baseline*",
        "*grew most: PID*",
        "*PID*PPID*RSS growth*",
    ])


def test_attach_with_tree_reads_the_tree_and_leaves_it_alone(pytester: pytest.Pytester, tree_of: Any) -> None:
    t = tree_of("1", "2", "--grandchild")
    pytester.makepyfile(f"""
        def test_attach(pmap_attach):
            probe = pmap_attach({t.master}, tree=True)
            assert sorted(probe.snapshot().processes) == {sorted(t.everyone())}
            assert probe.uss == probe.last.uss
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert all(map(running, t.everyone()))


def test_bad_tree_values_are_errors_naming_the_value(pytester: pytest.Pytester, tree_of: Any) -> None:
    t = tree_of("1", "1")
    pytester.makepyfile(f"""
        import pytest

        def test_spawn(pmap_spawn):
            pmap_spawn(["sleep", "600"], tree="yes")

        def test_attach(pmap_attach):
            pmap_attach({t.master}, tree=1)

        @pytest.mark.pmap(tree="yes", uss="1GiB")
        def test_marker():
            pass
    """)
    def children() -> list[str]:  # other tests of this worker may hold processes of their own
        done = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
        return [line for line in done.stdout.splitlines() if "sleep 600" in line]

    before = children()
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2, errors=1)
    result.stdout.fnmatch_lines([
        "marker on test_bad_tree_values_are_errors_naming_the_value.py::test_marker: tree='yes': give True (the test "
        "process and all its descendants) or False (the test process alone)",
        "*UsageError: pmap_spawn: tree='yes': give True (the process and all its descendants) or False (the process alone)",
        "*UsageError: pmap_attach: tree=1: give True *",
    ])
    assert children() == before


# -- teardown ------------------------------------------------------------------------------------------


def _tree_suite(pytester: pytest.Pytester, pids: Path, wait: bool) -> None:
    """A test that spawns forked_tree.py with a grandchild and a daemon as a tree, records every PID
    the tree probe sees (the daemon must be among them), then ends, or (`wait`) waits for SIGTERM."""
    pytester.makepyfile(f"""
        import json, os, subprocess, sys, time

        def test_spawned_tree(pmap_spawn):
            p = pmap_spawn([sys.executable, {TREE!r}, "1", "2", "--grandchild", "--daemon"], tree=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            pids = json.loads(p.process.stdout.readline())
            seen = sorted(p.snapshot().processes)
            assert pids["daemon"] in seen and pids["grandchild"] in seen and len(seen) == 5
            with open({str(pids)!r}, "w") as f:
                f.write(" ".join(map(str, seen)))
            if {wait!r}:
                os.rename({str(pids)!r}, {str(pids)!r} + ".done")
                time.sleep(600)
    """)


def test_teardown_leaves_no_process_of_a_spawned_tree_daemons_included(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    _tree_suite(pytester, pids, wait=False)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    seen = [int(pid) for pid in pids.read_text().split()]
    assert len(seen) == 5 and not [pid for pid in seen if running(pid)]


def test_sigterm_to_pytest_leaves_no_process_of_a_spawned_tree(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    _tree_suite(pytester, pids, wait=True)
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=pytester.path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = Path(f"{pids}.done")
    try:
        deadline = time.monotonic() + 60
        while not done.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), run.communicate(timeout=60)[0].decode()
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == -signal.SIGTERM
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        assert run.stdout is not None
        run.stdout.close()
    seen = [int(pid) for pid in done.read_text().split()]
    assert len(seen) == 5
    deadline = time.monotonic() + 5  # the daemon is reaped by init once pytest has gone
    while [pid for pid in seen if running(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in seen if running(pid)]



def _token() -> str:
    """A number no other process has in its command line: `sleep TOKEN` is found by it, and killed."""
    return str(1_000_000 + (os.getpid() * 7919 + time.monotonic_ns()) % 8_000_000)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _with_token(token: str) -> list[int]:
    """The running processes whose command line has `token` as an argument (none but the test's own)."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and running(int(e)) and token in _argv(int(e))]


def _kill_with_token(token: str) -> None:
    """Kill what a failed test left behind (never any other process: the token is the test's own)."""
    for pid in _with_token(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _sigterm_when(pytester: pytest.Pytester, ready: list[Path], *args: str, background: bool = False) -> None:
    """Run pytest on pytester's files, send it SIGTERM once every file of `ready` exists, and wait for
    it to end by it. `background`: as a non-interactive shell runs a job with `&`, SIGINT ignored."""
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=pytester.path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           preexec_fn=_ignore_sigint if background else None)
    try:
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in ready) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(p.exists() for p in ready), run.communicate(timeout=60)[0].decode()
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == -signal.SIGTERM, run.communicate()[0].decode()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        assert run.stdout is not None
        run.stdout.close()


def test_sigterm_while_a_process_is_being_started_stops_its_tree(pytester: pytest.Pytester) -> None:
    token, ready = _token(), pytester.path / "ready"
    pytester.makepyfile(f"""
        import os, time

        def slowly():  # in the child, before it runs sh: pytest is inside Popen meanwhile
            with open({str(ready)!r} + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename({str(ready)!r} + ".tmp", {str(ready)!r})
            time.sleep(2)

        def test_slow_start(pmap_spawn):
            pmap_spawn(["sh", "-c", "sleep {token} & sleep {token}"], tree=True, preexec_fn=slowly)
            time.sleep(600)
    """)
    try:
        _sigterm_when(pytester, [ready])
        child = int(ready.read_text())
        deadline = time.monotonic() + 20  # it runs sh in 2 s: stopped then, or left running for good
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + 5  # what pytest left is reaped by init
        while _with_token(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(child) and not _with_token(token)
    finally:
        if ready.exists():  # a child still before its exec of sh carries no token yet: wait for it
            child = int(ready.read_text())
            deadline = time.monotonic() + 10
            while running(child) and token not in _argv(child) and time.monotonic() < deadline:
                time.sleep(0.05)
        _kill_with_token(token)


def test_sigterm_to_the_xdist_controller_alone_stops_what_its_workers_spawned(pytester: pytest.Pytester) -> None:
    token = _token()
    pytester.makepyfile(f"""
        import os, time
        import pytest

        @pytest.mark.parametrize("n", [0, 1])
        def test_spawns(pmap_spawn, n):
            pmap_spawn(["sh", "-c", "sleep {token} & sleep {token}"], tree=True)
            with open(f"worker{{n}}.tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(f"worker{{n}}.tmp", f"worker{{n}}")
            time.sleep(600)  # the controller is gone meanwhile: this worker cannot report back
    """)
    ready = [pytester.path / "worker0", pytester.path / "worker1"]
    try:
        # SIGINT ignored, as in a CI script's `pytest -n 2 &`: execnet's last resort, SIGINT to a worker
        # whose controller is gone, does nothing, and the worker exits without its teardown
        _sigterm_when(pytester, ready, "-n", "2", "-p", "xdist", background=True)
        workers = {int(path.read_text()) for path in ready}
        assert len(workers) == 2  # each test in its own worker: both spawned trees run at the signal
        deadline = time.monotonic() + 60  # the workers end: at once, stopping their trees; or, without
        while any(map(running, workers)) and time.monotonic() < deadline:  # teardown, 15 s later (execnet)
            time.sleep(0.05)
        deadline = time.monotonic() + 5  # what they left is reaped by init
        while _with_token(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(running, workers)) and not _with_token(token)
    finally:
        for path in ready:  # a worker still running (its test sleeps): ours by its PID and execnet's command
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                if "import sys;exec(eval(sys.stdin.readline()))" in _argv(int(path.read_text())):
                    os.kill(int(path.read_text()), signal.SIGKILL)
        _kill_with_token(token)
