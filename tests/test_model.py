"""Snapshots of live processes and of canned /proc trees for kernels we cannot run here."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import PMAP, known

from pytest_pmap import METRICS, Mapping, NotSupported, PmapError, ProcessGone, Snapshot, SnapshotFileError, snapshot
from pytest_pmap._engine.parse.status import parse_stat
from pytest_pmap._engine.procfs import ProcFS
from pytest_pmap._engine.render.listing import render

STAT = ("{pid} (my (odd) cmd) {state} 1 1 1 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 777 1000 10 18446744073709551615 1 1 {stack} "
        "0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
SMAPS_BLOCK = """{start:x}-{end:x} rw-p 00000000 00:00 0\x20
Size:               {kb} kB
{rss}Pss:                {kb} kB
Private_Clean:         0 kB
Private_Dirty:      {kb} kB
Anonymous:          {kb} kB
Swap:                  0 kB
VmFlags: {flags}
"""


def fake_proc(root: Path, pid: int = 123, *, rss: bool = True, rollup: bool = True, vmflags: str = "rd wr mr mw me ac",
              state: str = "S", flags: int = 0, blocks: int = 3) -> ProcFS:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(STAT.format(pid=pid, state=state, flags=flags, stack=0x7FFF0000))
    (d / "status").write_text(f"Name:\tcmd\nTgid:\t{pid}\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
    (d / "cmdline").write_bytes(b"my\0cmd\0")
    smaps = maps = ""
    for i in range(blocks):
        start = 0x10000 * (i + 1)
        block = SMAPS_BLOCK.format(start=start, end=start + 0x4000, kb=16,
                                   rss="Rss:                16 kB\n" if rss else "", flags=vmflags)
        smaps += block
        maps += block.split("\n", 1)[0] + "\n"
    (d / "smaps").write_text(smaps)
    (d / "maps").write_text(maps)
    if rollup:
        (d / "smaps_rollup").write_text(
            "00010000-ffff0000 ---p 00000000 00:00 0                          [rollup]\n"
            + "".join(f"{k}:  {16 * blocks} kB\n" for k in ("Rss", "Pss", "Private_Dirty", "Anonymous"))
            + "Private_Clean:  0 kB\nSwap:  0 kB\n"
        )
    return ProcFS(root)


def test_stat_is_parsed_after_the_last_parenthesis() -> None:
    s = parse_stat(STAT.format(pid=5, state="Z", flags=0, stack=99).encode(), 5)
    assert s.comm == b"my (odd) cmd" and s.state == "Z" and s.is_zombie and s.start_time == 777 and s.start_stack == 99


def test_canned_tree_detail_and_rollup_agree(tmp_path: Path) -> None:
    fs = fake_proc(tmp_path)
    full, cheap = snapshot(123, procfs=fs), snapshot(123, detail=False, procfs=fs)
    assert full.detail and not cheap.detail and cheap.rollup is not None
    assert full.totals == cheap.totals
    assert full.rss == 48 * 1024 and full.uss == 48 * 1024 and full.mapped == 48 * 1024
    assert full.peak_rss == 2048 * 1024 and full.argv == ["my", "cmd"] and full.comm == b"my (odd) cmd"


def test_no_smaps_rollup_sums_smaps_instead(tmp_path: Path) -> None:
    snap = snapshot(123, detail=False, procfs=fake_proc(tmp_path, rollup=False))
    assert snap.detail and snap.rollup is None  # labelled: totals come from smaps
    assert snap.rss == 48 * 1024


def test_wsl1_smaps_without_rss_degrades_and_says_what_is_missing(tmp_path: Path) -> None:
    snap = snapshot(123, procfs=fake_proc(tmp_path, rss=False))
    assert snap.totals.missing == ("rss",)
    assert snap.pss == 48 * 1024 and snap.mappings[0].rss is None
    with pytest.raises(PmapError, match=r"no rss .*Rss.*available: mapped"):
        snap.rss  # noqa: B018


def test_empty_vmflags(tmp_path: Path) -> None:
    snap = snapshot(123, procfs=fake_proc(tmp_path, vmflags=""))
    assert snap.mappings[0].vmflags == ()


def test_zombie_is_gone_not_zero(tmp_path: Path) -> None:
    with pytest.raises(ProcessGone, match="zombie"):
        snapshot(123, procfs=fake_proc(tmp_path, state="Z"))


def test_empty_map_of_a_live_process_is_gone_and_a_kernel_thread_has_none(tmp_path: Path) -> None:
    with pytest.raises(ProcessGone, match="no memory map"):
        snapshot(123, procfs=fake_proc(tmp_path / "a", blocks=0))
    with pytest.raises(NotSupported, match="PID 123 is a kernel thread"):
        snapshot(123, procfs=fake_proc(tmp_path / "b", blocks=0, flags=0x00200000))


def test_missing_pid_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProcessGone, match="PID 99"):
        snapshot(99, procfs=ProcFS(tmp_path))


@pytest.mark.parametrize("bad", [0, -1, "12", 1.5, True])
def test_bad_pid_values(bad: object) -> None:
    with pytest.raises(ValueError, match="not a PID"):
        snapshot(bad)  # type: ignore[arg-type]


# -- live processes ---------------------------------------------------------------------------------------


def test_own_snapshot_invariants() -> None:
    snap = snapshot()
    assert snap.pid == os.getpid() and snap.detail and len(snap) > 10
    assert all(m.size >= 0 and m.rss is not None and 0 <= m.rss <= m.size for m in snap)
    assert snap.mapped == sum(m.size for m in snap)
    assert snap.rss == sum(known(m.rss) for m in snap)
    assert snap.uss == sum(known(m.private_clean) + known(m.private_dirty) for m in snap)
    assert snap.writeable_private + snap.shared <= snap.mapped
    assert snap.peak_rss is not None and snap.peak_rss >= snap.rss - (1 << 20)
    assert [m.start for m in snap] == sorted(m.start for m in snap)
    cheap = snapshot(detail=False)
    assert abs(cheap.rss - snap.rss) < 8 << 20  # rollup and the sum of smaps agree to within a little churn
    assert set(snap.totals.as_dict()) == set(METRICS)


def test_a_thread_id_means_its_process() -> None:
    ready, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    t = threading.Thread(target=run)
    t.start()
    ready.wait(10)
    try:
        assert tids[0] != os.getpid()
        assert snapshot(tids[0], detail=False).pid == os.getpid()
    finally:
        done.set()
        t.join()


@pytest.mark.skipif(PMAP is None, reason="procps pmap is not installed")
def test_totals_match_pmap_d_summary(spaced_sleep: int) -> None:
    out = subprocess.run(["pmap", "-d", str(spaced_sleep)], capture_output=True, text=True).stdout
    mapped, wp, shared = map(int, re.findall(r"(\d+)K", out.splitlines()[-1]))
    snap = snapshot(spaced_sleep)
    assert (snap.mapped.kib, snap.writeable_private.kib, snap.shared.kib) == (mapped, wp, shared)


def test_save_and_load_round_trip_with_odd_names(python_fixture: int, tmp_path: Path) -> None:
    snap = snapshot(python_fixture)
    path = snap.save(tmp_path / "s.json")
    again = Snapshot.load(path)
    assert again.smaps_text() == snap.smaps_text()
    for fmt in ("default", "x", "d", "X", "XX"):
        assert render(again, fmt) == render(snap, fmt)
    names = {m.raw_path.rsplit(b"/", 1)[-1] for m in again}
    assert {b"t\tab\xc3\xbc.bin", b"new\\012line.bin", b"bad\xff\xfe.bin",
            b"00400000-00452000 r-xp 00000000 08:02 173521 x.bin", b"del.bin (deleted)"} <= names, names
    assert again.totals == snap.totals


def test_a_snapshot_of_some_mappings_renders_just_those(python_fixture: int) -> None:
    """Rendering works on runs of consecutive blocks: a snapshot holding every other mapping (or
    the same mappings in another order) shows just those rows, and totals of just those."""
    snap = snapshot(python_fixture)
    some = snap.mappings[::2]
    for fmt, first_row, last_row in (("default", 1, -1), ("x", 2, -2), ("d", 2, -1)):
        rows = render(snap, fmt).splitlines()[first_row:last_row]
        picked = render(replace(snap, mappings=some), fmt).splitlines()
        assert picked[first_row:last_row] == rows[::2], fmt
        backwards = render(replace(snap, mappings=some[::-1]), fmt).splitlines()
        assert backwards[first_row:last_row] == rows[::2][::-1], fmt
    kib = [int(row.split()[1]) for row in render(snap, "x").splitlines()[2:-2]][::2]
    assert render(replace(snap, mappings=some), "x").splitlines()[-1].split()[2] == str(sum(kib))
    summary = render(replace(snap, mappings=some), "d").splitlines()[-1]
    mapped, writeable, shared = (int(n) for n in re.findall(r"(\d+)K", summary))
    assert mapped == sum(m.size for m in some) >> 10
    assert writeable == sum(m.size for m in some if m.is_writeable_private) >> 10
    assert shared == sum(m.size for m in some if m.is_shared) >> 10
    totals = replace(snap, mappings=some).totals
    assert (totals.rss, totals.pss, totals.uss) == (sum(known(m.rss) for m in some), sum(known(m.pss) for m in some),
                                                    sum(known(m.uss) for m in some))


@pytest.mark.parametrize(("name", "shown"), [
    (b"[anon:my arena]", "  [ anon ]"),      # no slash: anonymous memory, as pmap shows it
    (b"[anon:a/b]", "b]"),                  # pmap takes what follows the last slash (pmap-format.md)
    (b"/memfd:x (deleted)", "memfd:x (deleted)"),
    (b"/tmp/a\\012b", "a\\012b"),
])
def test_names_this_kernel_cannot_make_round_trip_and_render_as_pmap_does(name: bytes, shown: str, tmp_path: Path) -> None:
    text = b"7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          " + name + b"\nSize:  4 kB\nRss:  4 kB\n"
    snap = Snapshot(pid=1, mappings=[Mapping.from_text(text)], raw_cmdline=b"x\0")
    again = Snapshot.load(snap.save(tmp_path / "s.json"))
    assert again.mappings[0].raw_path == name and again.smaps_text() == text
    assert render(again, "default").splitlines()[1] == f"00007f0000000000      4K rw--- {shown}"


def test_bad_snapshot_files_are_clear_errors_and_left_alone(tmp_path: Path) -> None:
    cases = {
        "missing.json": (None, "does not exist"),
        "empty.json": (b"", "is empty"),
        "corrupt.json": (b'{"format": "pytest-pmap-snapshot", "version": 1, "pid": 1}', "corrupt"),
        "foreign.json": (b'{"hello": 1}', "not a pytest-pmap snapshot"),
        "newer.json": (b'{"format": "pytest-pmap-snapshot", "version": 99}', "version 99"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(SnapshotFileError, match=message) as err:
            Snapshot.load(path)
        assert name in str(err.value)
        if content is not None:
            assert path.read_bytes() == content


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("old")
    snapshot(detail=False).save(path)
    assert Snapshot.load(path).pid == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    with pytest.raises(PmapError, match="cannot write"):
        snapshot(detail=False).save(tmp_path / "no such dir" / "s.json")


def test_no_procfs_is_not_supported_not_gone(tmp_path: Path) -> None:
    with pytest.raises(NotSupported, match=r"no procfs at .*only Linux"):
        snapshot(1, procfs=ProcFS(tmp_path / "nowhere"))
