"""Faults on live processes: exits in the middle of a read, permissions, bad PIDs. Never a
traceback, never a silent zero, never a shortened map."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Forks

from pytest_pmap import MiB, PidReused, Probe, ProcessGone, ProcFS, snapshot
from pytest_pmap._cli.pmap import main as pmap_main
from pytest_pmap._measure.boundary import BoundaryReader


def _read_three_ways(pid: int, way: int, out: pytest.CaptureFixture[bytes]) -> tuple[int, int, int]:
    """Read `pid` as `snapshot()` (way 0), `snapshot(detail=False)` (1) or `pytest-pmap -x` (2): the
    number of mappings, the bytes mapped and the last mapping's address; `ProcessGone` when the
    reader says the process has gone (the command: exit status 1 and the header line only, or, for
    a zombie, pmap's empty listing)."""
    if way < 2:
        snap = snapshot(pid, detail=way == 0)
        return len(snap.mappings), snap.mapped, snap.mappings[-1].start if snap.mappings else 0
    status = pmap_main(["-x", str(pid)])
    lines = out.readouterr().out.splitlines()
    if status:
        assert len(lines) == 1, lines
        raise ProcessGone(f"PID {pid} : the command's exit status is {status}")
    rows = lines[2:-2]
    if not rows and lines[-1].split()[2:] == [b"0", b"0", b"0"]:
        raise ProcessGone(f"PID {pid} : a zombie, listed empty as pmap lists it")
    return len(rows), int(lines[-1].split()[2]) << 10, int(rows[-1].split()[0], 16) if rows else 0


def test_processes_exiting_while_they_are_read_give_a_whole_map_or_processgone(
    forks: Forks, capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    # 1,000 copies of a process with 2,000 mappings (forked from one, so each costs a few ms), each
    # exiting at a random moment of its read: the kernel then ends the read early, without an
    # error. Most exit while their parent is busy, so they wait as zombies with their start time
    # unchanged; some are caught between letting go of their memory map and turning zombie (state R).
    # Each is read by snapshot() (maps and smaps_rollup one time in four: the rollup needs the
    # memory map too, so fewer of those are cut) or, one time in five, by `pytest-pmap -x`.
    whole = [_read_three_ways(forks.waiting, way, capsysbinary) for way in range(3)]
    assert whole[0][0] > 2000
    outcomes = {"whole": 0, "gone": 0}
    partial: list[str] = []
    unnamed: list[str] = []
    chance = random.Random(14)
    for i in range(1000):
        way = 2 if i % 5 == 0 else 1 if i % 4 == 0 else 0
        pid = forks.go(str(chance.randrange(8_000)))  # exit after up to 8 ms: most reads are cut
        try:
            count, mapped, last = _read_three_ways(pid, way, capsysbinary)
        except ProcessGone as exc:
            unnamed += [] if f"PID {pid} " in str(exc) else [str(exc)]
            outcomes["gone"] += 1
        else:
            ref_count, ref_mapped, ref_last = whole[way]
            if count < ref_count - 8 or last != ref_last or abs(mapped - ref_mapped) > MiB:
                partial.append(f"PID {pid} read by {('snapshot()', 'snapshot(detail=False)', 'pytest-pmap -x')[way]}: "
                               f"{count} of {ref_count} mappings, mapped {mapped >> 10}K of {ref_mapped >> 10}K")
            outcomes["whole"] += 1
    assert not partial, f"{len(partial)} partial maps of 1000 ({outcomes}): {partial[:5]}"
    assert outcomes["whole"] and outcomes["gone"], outcomes
    assert not unnamed, f"errors that do not name the PID: {unnamed[:3]}"


def _as_nobody(code: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python that imported pytest_pmap as root and then became `nobody`
    (started through `wrapper`, a command that ends by running its arguments)."""
    # imported while files are readable:
    prelude = ("import locale, os, pytest_pmap, pytest_pmap.cli, pytest_pmap._cli.pmap, pytest_pmap._cli.commands, "
               "pytest_pmap._gate.results, json, argparse, tempfile, textwrap, difflib, platform\n"
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
    read, refused = out.stdout.splitlines()
    assert read == "READ True"
    assert refused.startswith(f"DENIED PID {victims[0].pid}: reading /proc/"), refused
    assert "runs as your user but is not dumpable" in refused and "run as root" in refused


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
        f"E       pytest_pmap.errors.AccessDenied: PID {victim.pid}: reading /proc/{victim.pid}/smaps was refused "
        "(Permission denied) though we run as root: root here lacks CAP_SYS_PTRACE over that process (a user "
        "namespace or a container drops it)*",
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


def test_a_process_whose_main_thread_exited_is_read_through_a_live_thread_and_listed_as_pmap_lists_it(
    main_thread_exited: tuple[int, int],
) -> None:
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

    def status(key: str) -> int:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
    assert status("VmHWM") > status("VmRSS") + 32 * 1024  # kB: the 64 MiB it freed
    probe = Probe(pid)  # resets the peak: through the live thread, or the kernel ignores it
    assert probe.peak_note == "" and status("VmHWM") < status("VmRSS") + 1024
    assert probe.peak_rss < probe.rss + MiB

    # The command lists it as pmap does: its own map is empty (the process as `[comm] <defunct>`,
    # a thread of it under that thread's command line), whatever the library reads through a thread.
    pmap = shutil.which("pmap")
    if pmap is None:
        pytest.skip("procps pmap is not installed")
    for args in ([str(pid)], [str(tid)], [str(pid), str(tid)]):
        for fmt in ([], ["-x"], ["-X"], ["-d"]):
            ours = subprocess.run([sys.executable, "-m", "pytest_pmap", *fmt, *args], capture_output=True)
            theirs = subprocess.run([pmap, *fmt, *args], capture_output=True)
            assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    listing = subprocess.run([sys.executable, "-m", "pytest_pmap", str(pid)], capture_output=True, text=True).stdout
    assert listing.splitlines()[0].endswith("] <defunct>") and listing.splitlines()[-1].split() == ["total", "0K"]


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

        for_pmap, reference = BoundaryReader(procfs=old_kernel, pid=holder.pid), \
            BoundaryReader(pid=holder.pid)
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


def test_stat_of_a_command_named_with_parentheses_and_a_newline_is_read_from_the_last_one(odd_comm: int) -> None:
    snap = snapshot(odd_comm)
    assert snap.comm == b"x) (y\nz" and snap.state == "S" and snap.mappings
    with open(f"/proc/{odd_comm}/stat", "rb") as f:
        fields = f.read().split(b") ")[-1].split()
    assert snap.start_time == int(fields[19]) and snap.start_stack == int(fields[25])
    assert "[stack]" in {m.path for m in snap.mappings}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare to mount procfs")
def test_a_read_only_procfs_refuses_the_peak_reset_and_the_probe_says_since_start() -> None:
    folder = tempfile.mkdtemp(prefix="pmap-ro-")
    # The victim's peak (a 64 MiB buffer it freed) is far above what it holds now.
    victim = subprocess.Popen([sys.executable, "-c", "b = bytearray(64 << 20); del b; print(flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert victim.stdout is not None and victim.stdout.readline() == b"\n"
        code = f"""
            from pytest_pmap import MiB, ProcFS, Probe
            probe = Probe({victim.pid}, procfs=ProcFS({folder!r}))
            print(probe.peak_note)
            print(probe.peak_rss > probe.rss + 32 * MiB, "peak_rss" in probe.peak_rss.explain())
        """
        out = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t proc -o ro proc {folder} && exec \"$0\" \"$@\"",
                              sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    finally:
        victim.kill()
        victim.communicate()
        os.rmdir(folder)
    if out.returncode != 0 and "mount" in out.stderr:
        pytest.skip(f"cannot mount procfs here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    note, checks = out.stdout.splitlines()
    assert note.startswith(f"peak RSS could not be reset (PID {victim.pid}: writing {folder}/{victim.pid}/clear_refs "
                           "failed: Read-only file system)")
    assert note.endswith(f"peak_rss is the peak since PID {victim.pid} started")
    assert checks == "True True"


def test_a_thread_id_means_its_process_counted_once(python_fixture: int) -> None:
    tids = sorted(int(t) for t in os.listdir(f"/proc/{python_fixture}/task") if int(t) != python_fixture)
    assert len(tids) >= 12
    whole = snapshot(python_fixture, detail=False)
    for tid in tids[:3]:
        through_thread = snapshot(tid, detail=False)
        assert through_thread.pid == python_fixture and through_thread.start_time == whole.start_time
        assert through_thread.mapped == whole.mapped and len(through_thread) == len(whole)
        assert Probe(tid).pid == python_fixture


def test_bad_values_given_to_the_fixtures_are_errors_naming_the_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_pid_text(pmap_attach):
            pmap_attach("123")
        def test_pid_zero(pmap_attach):
            pmap_attach(0)
        def test_pid_too_large(pmap_attach):
            pmap_attach(1 << 23)
        def test_no_such_program(pmap_spawn):
            pmap_spawn(["/nonexistent/prog", "--flag"])
        def test_no_argv(pmap_spawn):
            pmap_spawn([])
        def test_bad_size(pmap):
            assert pmap.rss < "lots"
    """)
    result = pytester.runpytest_inprocess()  # nothing is measured: this process will do
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines_random([
        "E   *UsageError: '123' is not a PID: give a positive integer*",
        "E   *UsageError: 0 is not a PID: give a positive integer*",
        "E   *UsageError: 8388608 is not a PID on this system: PIDs are below pid_max (*)",
        "E   *UsageError: pmap_spawn could not start '/nonexistent/prog': No such file or directory",
        "E   *UsageError: pmap_spawn needs a command to start: argv is empty",
        "E   *BudgetSyntaxError: 'lots' is not a size: *",
    ])
    assert "pytest_pmap/" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()


@pytest.mark.parametrize(("ini", "message"), [
    ("pmap = maybe", "ERROR: pmap in tox.ini: invalid truth value 'maybe'; write true or false, yes or no, 1 or 0"),
    ("pmap_top = many", "ERROR: pmap_top = 'many' in tox.ini is not a number of tests"),
    ("pmap_tolerance = lots", "ERROR: pmap_tolerance in tox.ini: 'lots' is not a tolerance: *"),
    ("pmap_metric = rss", "ERROR: pmap_metric in tox.ini: unknown metric 'rss'*rss_growth*"),
])
def test_bad_settings_are_usage_errors_naming_the_file(pytester: pytest.Pytester, ini: str, message: str) -> None:
    pytester.makefile(".ini", tox=f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_spawned_processes_that_exit_early_crash_or_hang_are_reported_and_reaped(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    pytester.makeconftest("import pytest_pmap._plugin.fixtures\npytest_pmap._plugin.fixtures.STOP_TIMEOUT = 0.5\n")
    pytester.makepyfile(f"""
        import os, signal, subprocess, sys, time
        PY = sys.executable

        def record(pid):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{pid}}\\n")

        def test_exits_before_the_first_snapshot(pmap_spawn, monkeypatch):
            started = []
            real = subprocess.Popen
            def popen(*args, **kwargs):
                proc = real(*args, **kwargs)
                started.append(proc.pid)
                record(proc.pid)
                proc_wait = proc.pid
                while open(f"/proc/{{proc_wait}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                    time.sleep(0.01)  # exited, not yet reaped: the fixture's first look sees a zombie
                return proc
            monkeypatch.setattr(subprocess, "Popen", popen)
            pmap_spawn([PY, "-c", "raise SystemExit(3)"])

        def test_crashes_during_the_test(pmap_spawn):
            p = pmap_spawn([PY, "-c", "import sys; sys.stdin.read(); import os; os.abort()"],
                           stdin=subprocess.PIPE)
            record(p.pid)
            before = p.rss
            p.process.stdin.close()
            p.process.wait()
            assert p.rss == before
            assert p.rss > 1 << 40, "fails, to show the note"

        def test_ignores_sigterm(pmap_spawn):
            p = pmap_spawn([PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                            "print(flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
            p.process.stdout.readline()
            record(p.pid)
    """)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2, warnings=2)
    result.stdout.fnmatch_lines_random([
        "E   *ProcessGone: pmap_spawn: '*python*' (PID *) exited with status 3 before its memory map could be read: "
        "there was nothing to measure",
        "E   *PID * was killed by SIGABRT: readings are from its last snapshot",
        "*PmapWarning: pmap_spawn: '*python*' (PID *) crashed: it was killed by SIGABRT",
        "*PmapWarning: pmap_spawn: '*python*' (PID *) ignored SIGTERM for 0.5 s and was killed with SIGKILL",
    ])
    spawned = [int(line) for line in pids.read_text().split()]
    assert len(spawned) == 3 and not any(os.path.exists(f"/proc/{pid}") for pid in spawned)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("pmap"),
                    reason="needs root, unshare and procps pmap")
def test_another_pid_namespace_is_read_through_its_own_procfs() -> None:
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while not (children := Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()):
            assert time.monotonic() < deadline, "unshare started nothing"
            time.sleep(0.02)
        host_pid = int(children[0])
        inner = f"/proc/{host_pid}/root/proc"  # the namespace's own procfs, where sleep is PID 1

        def sleeping() -> bool:  # until unshare has mounted it, this path shows the host's procfs
            try:
                return Path(f"{inner}/1/cmdline").read_bytes() == b"sleep\x0060\x00"
            except OSError:
                return False

        while not sleeping():
            assert time.monotonic() < deadline, "the namespace has no procfs with sleep as PID 1"
            time.sleep(0.02)
        snap = snapshot(1, procfs=ProcFS(inner))
        assert snap.pid == 1 and snap.argv == ["sleep", "60"]
        for _ in range(100):  # sleep may still be mapping its libraries: compare once its map is settled
            if [m.start for m in snap] == [m.start for m in snapshot(host_pid)]:
                break
            time.sleep(0.05)
            snap = snapshot(1, procfs=ProcFS(inner))
        assert [m.start for m in snap] == [m.start for m in snapshot(host_pid)]
        ours = subprocess.run([sys.executable, "-m", "pytest_pmap", "-x", "1"], capture_output=True, text=True,
                              env={**os.environ, "PYTEST_PMAP_PROCFS": inner})
        theirs = subprocess.run(["pmap", "-x", str(host_pid)], capture_output=True, text=True)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert ours.stdout.splitlines()[0] == "1:   sleep 60"
        assert ours.stdout.splitlines()[1:] == theirs.stdout.splitlines()[1:]
    finally:
        outer.kill()
        outer.wait()


ARM64_SMAPS = """\
aaaab0000000-aaaab0030000 r-xp 00000000 fd:00 42                         /usr/bin/app
Size:                192 kB
KernelPageSize:       64 kB
MMUPageSize:          64 kB
Rss:                 128 kB
Pss:                 128 kB
Private_Clean:       128 kB
Private_Dirty:         0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
ffff80000000-ffff80100000 rw-p 00000000 00:00 0\x20
Size:               1024 kB
KernelPageSize:       64 kB
MMUPageSize:          64 kB
Rss:                 320 kB
Pss:                 320 kB
Private_Clean:         0 kB
Private_Dirty:       320 kB
Swap:                 64 kB
VmFlags: rd wr mr mw me ac
"""


def test_64_kib_pages_are_taken_from_the_kernel_not_assumed(tmp_path: Path) -> None:
    proc = tmp_path / "7"
    proc.mkdir()
    (proc / "stat").write_text("7 (app) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "
                               "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    (proc / "status").write_text("Name:\tapp\nTgid:\t7\n")
    (proc / "cmdline").write_bytes(b"app\0")
    (proc / "smaps").write_text(ARM64_SMAPS)
    snap = snapshot(7, procfs=ProcFS(tmp_path))
    assert snap.mapped == (0x30000 + 0x100000) and snap.writeable_private == 0x100000
    assert snap.rss == 448 * 1024 and snap.uss == 448 * 1024 and snap.swap == 64 * 1024
    assert [m.field("KernelPageSize") for m in snap] == [65536, 65536]
    extended = snap.render("x").splitlines()
    assert extended[2].split()[:4] == ["0000aaaab0000000", "192", "128", "0"]
    assert extended[3].split()[:4] == ["0000ffff80000000", "1024", "320", "320"]
    assert extended[-1].split() == ["total", "kB", "1216", "448", "320"]
    full = snap.render("XX").splitlines()
    assert full[1].split()[5:7] == ["Size", "KernelPageSize"] and full[2].split()[5:7] == ["192", "64"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_files_in_a_folder_one_may_not_write_are_clear_errors_and_the_old_files_stay() -> None:
    folder = tempfile.mkdtemp(prefix="pmap-ro-")
    os.chmod(folder, 0o755)  # root's: nobody may read it but not write in it
    old = {name: f"old {name}\n" for name in ("snap.json", "results.json", "cli.json")}
    for name, text in old.items():
        Path(folder, name).write_text(text)
    try:
        out = _as_nobody(f"""
            import sys
            from pytest_pmap import PmapError, RunResults, snapshot
            from pytest_pmap.cli import main
            for save, name in ((snapshot(detail=False).save, "snap.json"), (RunResults(()).save, "results.json")):
                try:
                    save({folder!r} + "/" + name)
                except PmapError as exc:
                    print(exc)
            sys.stdout.flush()
            print("rc", main(["snapshot", str(os.getpid()), "-o", {folder!r} + "/cli.json"]))
        """)
        assert out.returncode == 0, out.stderr
        refused = f"no new file can be created in its folder '{folder}' (Permission denied); write it to another folder"
        assert out.stdout.splitlines() == [
            f"cannot write '{folder}/snap.json': {refused}",
            f"cannot write '{folder}/results.json': {refused}",
            "rc 1",
        ]
        assert out.stderr == f"pytest-pmap snapshot: cannot write '{folder}/cli.json': {refused}\n"
        assert sorted(os.listdir(folder)) == sorted(old)  # nothing half-written, nothing left behind
        assert all(Path(folder, name).read_text() == text for name, text in old.items())
    finally:
        shutil.rmtree(folder)


def test_a_zombie_is_exited_not_zero_for_snapshots_probes_and_the_budget(zombie: int) -> None:
    for detail in (True, False):
        with pytest.raises(ProcessGone, match=f"PID {zombie} has exited \\(it is a zombie, not yet reaped"):
            snapshot(zombie, detail=detail)
    with pytest.raises(ProcessGone, match=f"PID {zombie} has exited"):
        Probe(zombie)


def test_a_reaped_process_is_gone_with_its_pid_in_the_message() -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    for detail in (True, False):
        with pytest.raises(ProcessGone, match=f"^PID {done.pid} exited or is not visible here \\(/proc/{done.pid}/"):
            snapshot(done.pid, detail=detail)
