"""Faults on live processes: exits in the middle of a read, permissions, bad PIDs. Never a
traceback, never a silent zero, never a shortened map."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pytest_pmap import MiB, PidReused, Probe, ProcessGone, ProcFS, snapshot
from pytest_pmap.boundary import BoundaryReader

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


def _as_nobody(code: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python that imported pytest_pmap as root and then became `nobody`
    (started through `wrapper`, a command that ends by running its arguments)."""
    prelude = ("import locale, os, pytest_pmap, pytest_pmap.cli, pytest_pmap._pmapcli\n"  # imported while files are readable
               "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n")
    return subprocess.run([*wrapper, sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


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


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_process_of_ones_own_user_that_is_not_dumpable_is_refused_with_the_reason() -> None:
    victims = {}
    for dumpable in (1, 0):
        victims[dumpable] = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import ctypes, os, time
            os.setgroups([]); os.setgid(65534); os.setuid(65534)
            ctypes.CDLL(None).prctl(4, {dumpable}, 0, 0, 0)  # PR_SET_DUMPABLE
            print(flush=True); time.sleep(30)
        """)], stdout=subprocess.PIPE)
    try:
        for victim in victims.values():
            assert victim.stdout is not None and victim.stdout.readline() == b"\n"
        out = _as_nobody(f"""
            from pytest_pmap import AccessDenied, snapshot
            for pid in ({victims[1].pid}, {victims[0].pid}):
                try:
                    print("READ", len(snapshot(pid).mappings) > 0)
                except AccessDenied as exc:
                    print("DENIED", exc)
        """)
    finally:
        for victim in victims.values():
            victim.kill()
            victim.communicate()
    assert out.returncode == 0, out.stderr
    dumpable, not_dumpable = out.stdout.splitlines()
    assert dumpable == "READ True"
    assert not_dumpable.startswith(f"DENIED PID {victims[0].pid}: reading /proc/"), not_dumpable
    assert "runs as your user but is not dumpable" in not_dumpable and "run as root" in not_dumpable


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare")
def test_a_budget_that_cannot_be_measured_fails_with_the_reason_alone(pytester: pytest.Pytester) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.pmap(rss="1GiB")
        def test_budget_of_another_process(pmap_attach):
            probe = pmap_attach({victim.pid})
            assert probe.rss < "1GiB"
    """)
    try:
        # Root of a new user namespace: to the kernel, not allowed to read this machine's processes.
        result = pytester.run("unshare", "--user", "--map-root-user", sys.executable, "-m", "pytest", "-p",
                              "no:cacheprovider", "--pmap")
    finally:
        victim.kill()
        victim.wait()
    if result.ret != 1 and "unshare:" in result.stderr.str():
        pytest.skip(f"cannot make a user namespace here: {result.stderr.str().strip()}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ">       probe = pmap_attach(*)",
        f"E       pytest_pmap.errors.AccessDenied: PID {victim.pid}: reading /proc/{victim.pid}/smaps was refused *",
        "test_a_budget_that_cannot_be_measured_fails_with_the_reason_alone.py:5: AccessDenied",
    ])
    assert "pytest_pmap/" not in result.stdout.str()  # the error speaks for itself: no frames of ours
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare to mount procfs")
def test_hidepid_is_named_as_the_reason_a_process_is_refused_or_invisible() -> None:
    folder = tempfile.mkdtemp(prefix="pmap-hidepid-")
    os.chmod(folder, 0o755)
    noaccess, invisible = f"{folder}/noaccess", f"{folder}/invisible"
    os.mkdir(noaccess)
    os.mkdir(invisible)
    # A private mount namespace: the two procfs mounts vanish with it.
    mount = (f"mount -t proc -o hidepid=1 proc {noaccess} && mount -t proc -o hidepid=2 proc {invisible} "
             "&& exec \"$0\" \"$@\"")
    victim = subprocess.Popen(["sleep", "30"])
    try:
        out = _as_nobody(f"""
            from pytest_pmap import AccessDenied, ProcessGone, ProcFS, snapshot
            for root in ({noaccess!r}, {invisible!r}):
                try:
                    snapshot({victim.pid}, procfs=ProcFS(root))
                except (AccessDenied, ProcessGone) as exc:
                    print(type(exc).__name__, exc)
                else:
                    print("READ")
        """, wrapper=("unshare", "--mount", "sh", "-c", mount))
    finally:
        victim.kill()
        victim.wait()
        os.rmdir(noaccess)
        os.rmdir(invisible)
        os.rmdir(folder)
    if out.returncode != 0 and "mount" in out.stderr:
        pytest.skip(f"cannot mount procfs here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    refused, hidden = out.stdout.splitlines()
    assert refused.startswith(f"AccessDenied PID {victim.pid}: reading {noaccess}/{victim.pid}/"), refused
    assert f"procfs at {noaccess} is mounted with hidepid=noaccess" in refused
    assert hidden.startswith(f"ProcessGone PID {victim.pid} is not visible here or has exited"), hidden
    assert f"procfs at {invisible} is mounted with hidepid=invisible, which hides the processes of other users" in hidden
    assert all("run as the process's user or as root" in line for line in (refused, hidden))


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


def test_a_process_whose_main_thread_exited_is_read_through_a_live_thread(main_thread_exited: tuple[int, int]) -> None:
    pid, tid = main_thread_exited
    with open(f"/proc/{pid}/maps", "rb") as f:
        assert f.read() == b"", "the kernel shows this process's own map as empty"
    with open(f"/proc/{pid}/task/{tid}/maps", "rb") as f:
        starts = [int(line.split(b"-", 1)[0], 16) for line in f.read().splitlines()]
    for detail in (True, False):
        snap = snapshot(pid, detail=detail)
        assert snap.pid == pid and snap.state != "Z" and "python" in snap.cmdline
        assert abs(len(snap.mappings) - len(starts)) <= 2  # the live thread may map or unmap a little
        assert snap.rss > 0 and snap.uss > 0 and snap.mapped > 0
    assert snapshot(tid).pid == pid

    out = subprocess.run([sys.executable, "-m", "pytest_pmap", pid_arg := str(pid)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{pid_arg}:   ") and "python" in lines[0] and "<defunct>" not in lines[0]
    assert "[ stack ]" in out.stdout
    shown = {int(line.split()[0], 16) for line in lines[1:-1]}
    assert len(shown & set(starts)) >= len(starts) - 2
    assert int(lines[-1].split()[1].rstrip("K")) > 0  # " total    90624K"


def _start_with_pid(pid: int, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start `argv` as PID `pid` (free again), by setting the kernel's last-PID counter just below it."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(argv)
        if proc.pid == pid:
            return proc
        proc.kill()  # another process on the machine took the PID first: try again
        proc.wait()
    pytest.skip(f"could not get PID {pid} again")


needs_pid_control = pytest.mark.skipif(
    not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK), reason="needs a writable /proc/sys/kernel/ns_last_pid"
)


@needs_pid_control
def test_a_reused_pid_is_an_error_naming_both_start_times() -> None:
    first = subprocess.Popen(["sleep", "60"])
    probe = Probe(first.pid)
    assert probe.rss > 0
    first.kill()
    first.wait()
    time.sleep(0.05)  # start times are in clock ticks: make sure the next one differs
    second = _start_with_pid(first.pid, ["sleep", "60"])
    try:
        now = snapshot(second.pid)
        assert now.start_time != probe.baseline.start_time
        for read in (lambda: probe.rss, lambda: probe.growth, lambda: probe.diff()):
            with pytest.raises(PidReused) as caught:
                read()
            message = str(caught.value)
            assert f"PID {first.pid} now names another process" in message
            assert f"(tick {probe.baseline.start_time})" in message and f"(tick {now.start_time})" in message
    finally:
        second.kill()
        second.wait()


@needs_pid_control
def test_a_spawned_process_keeps_its_last_reading_when_its_pid_is_reused() -> None:
    first = subprocess.Popen(["sleep", "60"])
    probe = Probe(first.pid)
    probe.process = first
    last = probe.rss
    first.kill()
    first.wait()
    second = _start_with_pid(first.pid, [sys.executable, "-c", "b = bytearray(64 << 20); import time; time.sleep(60)"])
    try:
        assert probe.rss == last and probe.last is not None and probe.last.start_time == probe.baseline.start_time
    finally:
        second.kill()
        second.wait()


@needs_pid_control
def test_watch_ends_when_the_pid_is_reused_rather_than_showing_a_jump() -> None:
    first = subprocess.Popen(["sleep", "60"])
    watch = subprocess.Popen([sys.executable, "-m", "pytest_pmap", "watch", str(first.pid), "-n", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watch.stdout is not None
    second = None
    try:
        assert "mapped:" in watch.stdout.readline()
        watch.send_signal(signal.SIGSTOP)  # hold it between two lines while the PID changes hands
        first.kill()
        first.wait()
        time.sleep(0.05)
        second = _start_with_pid(first.pid, ["sleep", "60"])
        watch.send_signal(signal.SIGCONT)
        out, err = watch.communicate(timeout=20)
    finally:
        watch.kill()
        if second is not None:
            second.kill()
            second.wait()
    assert watch.returncode == 0 and err == ""
    last = out.splitlines()[-1]
    assert last.startswith(f"pytest-pmap watch: PID {first.pid} now names another process"), out


def _procfs_without(root: Path, pid: int, missing: str) -> ProcFS:
    """A procfs at `root` that shows live process `pid` as /proc does, except for one missing file
    (as on a kernel that does not have it)."""
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "pid_max").symlink_to("/proc/sys/kernel/pid_max")
    (root / str(pid)).mkdir()
    for name in ("stat", "status", "cmdline", "maps", "smaps", "smaps_rollup", "clear_refs"):
        if name != missing:
            (root / str(pid) / name).symlink_to(f"/proc/{pid}/{name}")
    return ProcFS(root)


def test_without_smaps_rollup_totals_are_summed_from_smaps_and_labelled(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "b = bytearray(32 << 20); print(flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"\n"
        old_kernel = _procfs_without(tmp_path, holder.pid, "smaps_rollup")
        summed, rolled = snapshot(holder.pid, detail=False, procfs=old_kernel), snapshot(holder.pid, detail=False)
        assert (summed.totals_from, rolled.totals_from) == ("smaps", "smaps_rollup")
        assert summed.rollup is None and summed.mappings[0].rss is not None
        assert summed.uss > 32 * MiB and abs(summed.uss - rolled.uss) < MiB, (summed.totals, rolled.totals)

        for_pmap, reference = BoundaryReader(procfs=old_kernel, pid=holder.pid, fix_malloc=False), \
            BoundaryReader(pid=holder.pid, fix_malloc=False)
        summed_rollup, real_rollup = for_pmap.read().rollup, reference.read().rollup
        assert (for_pmap.totals_from, reference.totals_from) == ("smaps", "smaps_rollup")
        assert set(summed_rollup) == set(real_rollup) >= {"Pss", "Private_Clean", "Private_Dirty", "Anonymous"}
        assert all(abs(summed_rollup[k] - real_rollup[k]) < MiB for k in real_rollup), (summed_rollup, real_rollup)
        assert summed_rollup["Private_Dirty"] > 32 * MiB
    finally:
        holder.kill()
        holder.communicate()


def test_pmap_works_on_a_kernel_without_smaps_rollup_and_says_so(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import os, pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(config):
            # This process as a kernel without smaps_rollup would show it.
            root = os.path.abspath("oldproc")
            os.makedirs(f"{root}/sys/kernel")
            os.symlink("/proc/sys/kernel/pid_max", f"{root}/sys/kernel/pid_max")
            pid = os.getpid()
            os.mkdir(f"{root}/{pid}")
            for name in ("stat", "status", "cmdline", "maps", "smaps", "clear_refs"):
                os.symlink(f"/proc/{pid}/{name}", f"{root}/{pid}/{name}")
            os.environ["PYTEST_PMAP_PROCFS"] = root
    """)
    pytester.makepyfile("""
        KEEP = []
        def test_grows():
            KEEP.append(bytearray(16 << 20))
    """)
    result = pytester.runpytest_subprocess("--pmap", "--pmap-json", "out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pmap: this kernel has no smaps_rollup: PSS and USS were summed over smaps *"])
    (record,) = json.loads((pytester.path / "out.json").read_text())["results"]
    assert record["growth"]["uss"] >= 16 * MiB and record["growth"]["pss"] >= 16 * MiB


WSL1_CONFTEST = """
    import os, re, pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        # This process as WSL1 shows it: smaps without Rss lines (a copy taken now).
        root = os.path.abspath("wsl1")
        pid = os.getpid()
        os.makedirs(f"{root}/{pid}")
        for name in ("stat", "status", "cmdline", "maps", "clear_refs"):
            os.symlink(f"/proc/{pid}/{name}", f"{root}/{pid}/{name}")
        with open(f"/proc/{pid}/smaps", "rb") as f:
            smaps = re.sub(rb"(?m)^Rss:.*\\n", b"", f.read())
        with open(f"{root}/{pid}/smaps", "wb") as f:
            f.write(smaps)
        os.environ["PYTEST_PMAP_PROCFS"] = root
"""


def test_a_budget_on_a_metric_the_kernel_lacks_is_a_warning_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(WSL1_CONFTEST)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pmap(rss_growth="1MiB", uss_growth="1GiB")
        def test_budget():
            pass
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([
        "*PmapWarning: memory budget rss_growth: not checked: PID * the kernel reported no rss "
        "(smaps has no Rss lines); metrics available: mapped, writeable_private, shared, pss, uss, *",
    ])
    strict = pytester.runpytest_subprocess("-W", "error::pytest_pmap.PmapWarning")
    strict.assert_outcomes(failed=1)
