"""`Probe` on live processes: this one, and children that map and touch memory on command."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_pmap import MiB, PidReused, ProcessGone, ProcFS
from pytest_pmap._measure.probe import Probe, Reading

DIFF_TITLES = "  Address            Kbytes      RSS    Dirty Mode  Mapping"

CHILD = """
import mmap, sys
held = []
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "alloc":  # map N MiB of private anonymous memory and touch every page
        region = mmap.mmap(-1, int(arg) << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for i in range(0, len(region), mmap.PAGESIZE):
            region[i] = 1
        held.append(region)
    elif command == "free":
        for region in held:
            region.close()
        held.clear()
    elif command == "exit":
        sys.exit(int(arg))
    print("ok", flush=True)
"""


class Child:
    """A Python process that maps and frees memory when told to, through a pipe; `stop()` reaps it."""

    def __init__(self) -> None:
        # exec() keeps the command line on one line (a newline in it breaks the diff's header: see below)
        self.proc = subprocess.Popen([sys.executable, "-c", f"exec({CHILD!r})"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        self.ask("ready?")  # answered once the interpreter has started and waits for commands

    def ask(self, command: str) -> None:
        """Send a command and wait until it is done."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"ok\n", f"the child failed at {command!r}"

    def exit(self, status: int, reap: bool = True) -> None:
        """Make the child exit with `status`; unless `reap`, leave it a zombie."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"exit %d\n" % status)
        self.proc.stdin.flush()
        if reap:
            self.proc.wait(timeout=20)
            return
        deadline = time.monotonic() + 20
        while Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def child() -> Iterator[Child]:
    c = Child()
    yield c
    c.stop()


STAT = ("{pid} (cmd) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 18446744073709551615 1 1 8192 "
        "0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
BLOCK = ("{start:08x}-{end:08x} rw-p 00000000 00:00 0 \nSize:  {kb} kB\n{rss}Pss:  {kb} kB\nPrivate_Clean:  0 kB\n"
         "Private_Dirty:  {kb} kB\nAnonymous:  {kb} kB\nSwap:  0 kB\nVmFlags: rd wr mr mw me ac \n")


def fake_proc(root: Path, pid: int = 123, *, start_time: int = 777, rss: bool = True, peaks: bool = True,
              extra: str = "") -> ProcFS:
    """A /proc tree for one process with two 16 KiB mappings and the smaps text `extra` (`rss=False`:
    a kernel without Rss lines, like WSL1; `peaks=False`: no VmHWM/VmRSS in status). It has no clear_refs."""
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "stat").write_text(STAT.format(pid=pid, start=start_time))
    (d / "status").write_text(f"Name:\tcmd\nTgid:\t{pid}\n" + ("VmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n" if peaks else ""))
    (d / "cmdline").write_bytes(b"cmd\0")
    rss_line = "Rss:  16 kB\n" if rss else ""
    blocks = "".join(BLOCK.format(start=s, end=s + 0x4000, kb=16, rss=rss_line) for s in (0x10000, 0x20000))
    (d / "smaps").write_text(blocks + extra)
    return ProcFS(root)


# -- this process ------------------------------------------------------------------------------------------

def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def test_a_probe_on_this_process_takes_its_baseline_and_resets_the_peak_at_construction() -> None:
    peak = b"\x01" * (48 * MiB)  # raise VmHWM well above what the process holds afterwards
    del peak
    assert _status_kb("VmHWM") >= _status_kb("VmRSS") + 32 * 1024
    t0 = time.time()
    probe = Probe()
    assert probe.pid == os.getpid() and probe.baseline.pid == os.getpid() and probe.baseline.detail
    assert t0 <= probe.baseline.taken_at <= time.time() and probe.last is probe.baseline
    assert probe.peak_note == "" and probe.ended == ""
    assert probe.peak_growth < 8 * MiB  # the 48 MiB peak before the probe is forgotten


def test_a_thread_id_means_its_process() -> None:
    ready, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(20)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(20) and tids[0] != os.getpid()
        probe = Probe(tids[0])
        assert probe.pid == os.getpid() and probe.baseline.pid == os.getpid()
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize("name", ["rss_peak", "vms_growth", "growth", "RSS"])
def test_an_unknown_reading_is_a_value_error_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^'{name}' is not a reading: use a metric \(mapped, writeable_private, "
                                         r"shared, rss, pss, uss, private_dirty, anonymous, swap\), a metric with "
                                         r"_growth, peak_rss or peak_growth$"):
        Probe().reading(name)


# -- a child that allocates --------------------------------------------------------------------------------

def test_uss_and_rss_grow_by_what_the_child_touches(child: Child) -> None:
    probe = Probe(child.pid)
    assert probe.pid == child.pid and probe.baseline.pid == child.pid
    before = probe.baseline
    child.ask("alloc 32")
    growth = probe.growth
    # resident totals: allow 1 MiB for the child's clean file pages, which the kernel may drop meanwhile
    for name in ("uss", "rss", "private_dirty", "anonymous", "writeable_private", "mapped"):
        value = getattr(growth, name)
        assert 31 * MiB <= value < 36 * MiB, (name, value)
    assert growth.shared == 0 and growth.swap == 0
    assert 31 * MiB <= probe.uss - before.uss < 36 * MiB
    assert 31 * MiB <= probe.reading("rss_growth") < 36 * MiB


def test_peaks_count_memory_freed_again_until_mark_resets_them(child: Child) -> None:
    probe = Probe(child.pid)
    assert probe.peak_note == "" and probe.peak_growth < 2 * MiB
    child.ask("alloc 32")
    child.ask("free")
    assert probe.rss < probe.baseline.rss + 2 * MiB  # the memory is gone ...
    start = probe.baseline.status_size("VmRSS")
    assert start is not None
    # ... but the peak remembers it (VmHWM comes from the kernel's approximate per-CPU counters: allow 2 MiB)
    assert probe.peak_rss >= start + 30 * MiB
    assert 30 * MiB <= probe.peak_growth < 36 * MiB
    first = probe.baseline
    assert probe.mark() is probe.baseline and probe.baseline is not first
    assert probe.peak_growth < 2 * MiB and probe.peak_rss < probe.rss + 2 * MiB
    assert abs(probe.growth.uss or 0) < 2 * MiB


def test_new_mappings_finds_the_new_anonymous_region_only(child: Child) -> None:
    probe = Probe(child.pid)
    assert not probe.new_mappings(anon=True, larger_than="16MiB")
    child.ask("alloc 32")
    (region,) = probe.new_mappings(anon=True, larger_than="16MiB")
    assert 32 * MiB <= region.new < 34 * MiB and region.is_anon and region.mapping.perms == "rw-p"
    assert region.rss_delta is not None and region.rss_delta >= 32 * MiB
    assert not probe.new_mappings(anon=False, larger_than="16MiB")
    assert not probe.new_mappings(anon=True, larger_than="34MiB")
    found = probe.new_mappings(larger_than=16 * MiB)
    assert [c.start for c in found] == [region.start] and found.diff.before is probe.baseline
    assert repr(found) == f"NewMappings([{region.kind}{region.start:x} {region.new} new [anon]])"
    child.ask("alloc 20")  # mapped next to the first, with the same flags: the kernel merges the two
    assert sum(c.new for c in probe.new_mappings(anon=True, larger_than="16MiB")) >= 52 * MiB


def test_readings_remember_their_snapshots_and_explain_the_change(child: Child) -> None:
    probe = Probe(child.pid)
    child.ask("alloc 32")
    uss = probe.uss
    assert isinstance(uss, Reading) and uss.what == "uss" and uss.note == ""
    assert uss.before is probe.baseline and uss.after is probe.last and uss == uss.after.uss
    again = probe.reading("uss", uss.after)  # a reading of a snapshot given takes no new one
    assert again.after is uss.after and again == uss and probe.last is uss.after
    growth = probe.reading("uss_growth")
    assert growth.what == "growth.uss" and growth == growth.after.uss - growth.before.uss
    text = uss.explain()
    lines = text.splitlines()
    assert lines[0].startswith(f"{child.pid}:   ") and "(pmap diff " in lines[0] and lines[1] == DIFF_TITLES
    assert [row for row in lines[2:] if row[:2] in ("+ ", "~ ") and "+32768 " in row and row.endswith("[ anon ]")]
    assert lines[-2].startswith("mapped: ") and lines[-1].startswith("rss: ")
    brief = uss.brief(rows=1).splitlines()
    assert brief[0] == DIFF_TITLES and "+32768 " in brief[1] and brief[-1] == lines[-2]
    assert not [line for line in brief if "total kB" in line or line.startswith("  ---")]
    child.ask("free")
    assert uss.explain() == text  # the snapshots behind it, not the process now


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_a_process_that_exits_leaves_readings_from_its_last_snapshot(child: Child, reap: bool) -> None:
    probe = Probe(child.pid)
    child.ask("alloc 32")
    last = probe.uss
    child.exit(0, reap=reap)
    uss = probe.uss
    assert uss == last and uss.after is last.after is probe.last
    assert probe.ended == f"PID {child.pid} exited: readings are from its last snapshot"
    assert uss.note == probe.ended and uss.explain().startswith(probe.ended + "\n")
    assert probe.peak_rss.note == probe.ended
    assert probe.growth.uss == last - probe.baseline.uss


def test_a_started_process_that_exits_says_how(child: Child) -> None:
    probe = Probe(child.pid)
    probe.process = child.proc
    last = probe.rss  # a reading after the baseline (one that exited before any is ProcessGone: see test_faults)
    child.exit(3)
    assert probe.rss == last
    assert probe.ended == f"PID {child.pid} exited with status 3: readings are from its last snapshot"


def test_a_started_process_that_exits_before_any_reading_is_unknown_not_unchanged(child: Child) -> None:
    probe = Probe(child.pid)
    probe.process = child.proc
    child.exit(3)
    with pytest.raises(ProcessGone, match=f"PID {child.pid} exited with status 3 before it could be read"):
        probe.rss  # noqa: B018


def test_brief_starts_at_the_column_titles_when_the_command_line_holds_a_newline() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        reading = Probe(proc.pid).rss
        assert reading.explain().splitlines()[1] == DIFF_TITLES
        assert reading.brief().splitlines()[0] == DIFF_TITLES
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()


# -- canned /proc trees ------------------------------------------------------------------------------------

def test_a_reused_pid_is_pid_reused_naming_both_start_times(tmp_path: Path) -> None:
    fs = fake_proc(tmp_path)
    probe = Probe(123, procfs=fs)
    assert probe.rss == 32 * 1024
    fake_proc(tmp_path, start_time=999)  # the process exited; another one got its PID
    with pytest.raises(PidReused, match=r"^PID 123 now names another process: the one watched started at .* "
                                        r"\(tick 777\), the one there now at .* \(tick 999\)\. The process watched"):
        probe.rss  # noqa: B018


def test_a_peak_that_cannot_be_reset_says_so_in_its_readings(tmp_path: Path) -> None:
    probe = Probe(123, procfs=fake_proc(tmp_path))  # no clear_refs in this tree
    assert probe.peak_note.startswith("peak RSS could not be reset (")
    assert probe.peak_note.endswith("; peak_rss is the peak since PID 123 started")
    peak = probe.peak_rss
    assert peak == 2048 * 1024 and probe.peak_growth == 1024 * 1024
    assert peak.what == "peak_rss" and peak.note == probe.peak_note
    assert peak.explain().startswith(probe.peak_note + "\n")
    assert probe.uss.note == ""


def test_new_mappings_counts_only_regions_larger_than_the_threshold(tmp_path: Path) -> None:
    probe = Probe(123, procfs=fake_proc(tmp_path))
    fake_proc(tmp_path, extra=BLOCK.format(start=0x40000, end=0x44000, kb=16, rss="Rss:  16 kB\n"))
    (region,) = probe.new_mappings(anon=True, larger_than=16 * 1024 - 1)
    assert region.kind == "+" and region.start == 0x40000 and region.new == 16 * 1024
    assert not probe.new_mappings(larger_than="16K")
