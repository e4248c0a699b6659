"""Process trees on live processes: the walk, each process read as `snapshot()` reads it, the totals
summed, `unique` against a page-by-page count written here, `TreeDiff`, and tree snapshot files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import HELPERS
from forked import running

from pytest_pmap import MiB, ProcFS, Snapshot, SnapshotFileError, UsageError, snapshot
from pytest_pmap._engine.pages import count_unique
from pytest_pmap._engine.tree import TreeSnapshot, descendants, load_snapshot, snapshot_tree
from pytest_pmap._engine.treediff import TreeDiff

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="pagemap's frame numbers and /proc/kpagecount are root's")


def pages_only_the_tree_maps(pids: list[int]) -> int:
    """The bytes of pages mapped by the processes `pids` and by no other, counted page by page from
    each process's maps, its pagemap entry for every page, and /proc/kpagecount for every frame."""
    page = os.sysconf("SC_PAGE_SIZE")
    mapped: dict[int, int] = {}
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                start, end = (int(a, 16) for a in line.split()[0].split("-"))
                if start >= 1 << 47:  # [vsyscall]: above the user address space, never in pagemap
                    continue
                pagemap.seek(start // page * 8)
                for (entry,) in struct.iter_unpack("<Q", pagemap.read((end - start) // page * 8)):
                    if entry >> 63:
                        frame = entry & ((1 << 55) - 1)
                        mapped[frame] = mapped.get(frame, 0) + 1
    only_ours = 0
    with open("/proc/kpagecount", "rb") as kpagecount:
        for frame, times in mapped.items():
            kpagecount.seek(frame * 8)
            only_ours += struct.unpack("<Q", kpagecount.read(8))[0] == times
    return only_ours * page


# -- the walk ------------------------------------------------------------------------------------------


def test_the_tree_holds_every_descendant_each_read_as_snapshot_reads_it(tree_of: Any) -> None:
    t = tree_of("1", "2", "--grandchild", "--thread-child")
    tree = snapshot_tree(t.master)
    assert set(tree.processes) == t.everyone()
    assert next(iter(tree.processes)) == t.master and tree.pid == t.master and tree.root.pid == t.master
    ppid = {pid: snap.ppid for pid, snap in tree.processes.items()}
    assert ppid[t.pids["grandchild"]] == t.pids["workers"][0]
    assert ppid[t.pids["thread_child"]] == t.master  # forked by a thread: its parent is the process
    assert all(ppid[w] == t.master for w in t.pids["workers"]) and ppid[t.master] == os.getpid()
    order = list(tree.processes)
    assert order.index(t.pids["workers"][0]) < order.index(t.pids["grandchild"])  # a parent before its children
    for pid, snap in tree.processes.items():
        alone = snapshot(pid)
        assert (snap.start_time, snap.raw_cmdline, snap.ppid) == (alone.start_time, alone.raw_cmdline, alone.ppid)
        assert [m.header_line for m in snap.mappings] == [m.header_line for m in alone.mappings]
    assert tree.exited == {}


def test_the_totals_are_every_process_summed(tree_of: Any) -> None:
    t = tree_of("4", "2")
    for detail in (True, False):
        tree = snapshot_tree(t.master, detail=detail)
        for name in ("mapped", "writeable_private", "shared", "rss", "pss", "uss", "private_dirty", "anonymous", "swap"):
            assert getattr(tree, name) == sum(getattr(s, name) for s in tree.processes.values()), name
        assert tree.status_size("VmHWM") == sum(s.status_size("VmHWM") or 0 for s in tree.processes.values())
        assert tree.peak_rss == tree.status_size("VmHWM")
        assert tree.detail is detail and tree.totals_from == ("smaps" if detail else "smaps_rollup")
        assert len(tree.mappings) == sum(len(s.mappings) for s in tree.processes.values())


def test_a_thread_id_means_its_process_tree(tree_of: Any) -> None:
    t = tree_of("1", "1", "--thread-child")
    thread = max(int(tid) for tid in os.listdir(f"/proc/{t.master}/task"))
    assert thread != t.master
    assert set(snapshot_tree(thread, unique=False).processes) == t.everyone()


def test_a_process_that_exits_during_the_walk_is_left_out_and_named(tree_of: Any) -> None:
    t = tree_of("1", "1", "--zombie")
    while running(t.pids["zombie"]):  # until it has exited (and waits, a zombie, for the master to reap it)
        time.sleep(0.01)
    tree = snapshot_tree(t.master, unique=False)
    assert t.pids["zombie"] not in tree.processes
    assert "zombie" in tree.exited[t.pids["zombie"]] and str(t.pids["zombie"]) in tree.exited[t.pids["zombie"]]
    assert set(tree.processes) == t.everyone()
    assert (f"left out: PID {t.pids['zombie']} has exited (it is a zombie, not yet reaped by its parent): "
            "it has no memory map") in tree.table()


def _redirected_procfs(root: Path, pids: set[int], children: bool, gone: tuple[int, ...] = ()) -> ProcFS:
    """A procfs at `root` that shows the live processes `pids` as /proc does, each thread's
    children file left out unless `children` (as on a kernel built without CONFIG_PROC_CHILDREN);
    the PIDs `gone` are listed as children of the first one but have no directory (they exited)."""
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "pid_max").symlink_to("/proc/sys/kernel/pid_max")
    for pid in pids:
        for name in ("stat", "status", "cmdline", "maps", "smaps", "smaps_rollup", "pagemap"):
            (root / str(pid) / name).parent.mkdir(exist_ok=True)
            (root / str(pid) / name).symlink_to(f"/proc/{pid}/{name}")
        for tid in os.listdir(f"/proc/{pid}/task"):
            task = root / str(pid) / "task" / tid
            task.mkdir(parents=True)
            (task / "stat").symlink_to(f"/proc/{pid}/task/{tid}/stat")
            if children:
                listed = Path(f"/proc/{pid}/task/{tid}/children").read_text()
                if tid == str(min(pids)) and gone:
                    listed += " ".join(map(str, gone)) + " "
                (task / "children").write_text(listed)
    return ProcFS(root)


def test_without_children_files_the_parents_are_scanned(tree_of: Any, tmp_path: Path) -> None:
    t = tree_of("1", "2", "--grandchild", "--thread-child")
    others = {1, os.getpid(), os.getppid()}  # processes outside the tree, which outlive the test
    fs = _redirected_procfs(tmp_path, t.everyone() | others, children=False)
    assert sorted(fs.children(t.master)) == sorted(ProcFS().children(t.master))
    tree = snapshot_tree(t.master, procfs=fs, unique=False)
    assert set(tree.processes) == t.everyone()
    assert sorted(descendants(t.master, fs)) == sorted(t.everyone() - {t.master})


def test_a_child_listed_but_gone_when_read_is_named_in_exited(tree_of: Any, tmp_path: Path) -> None:
    t = tree_of("1", "1")
    vanished = subprocess.Popen(["true"])
    vanished.wait()  # reaped: its PID has no directory any more
    fs = _redirected_procfs(tmp_path, {t.master, *t.pids["workers"]}, children=True, gone=(vanished.pid,))
    assert min(t.everyone()) == t.master
    tree = snapshot_tree(t.master, procfs=fs, unique=False)
    assert set(tree.processes) == t.everyone()
    assert list(tree.exited) == [vanished.pid] and "exited" in tree.exited[vanished.pid]


def test_the_root_gone_is_process_gone() -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    with pytest.raises(Exception, match=f"PID {done.pid}") as err:
        snapshot_tree(done.pid)
    assert type(err.value).__name__ == "ProcessGone"


# -- unique --------------------------------------------------------------------------------------------


@needs_root
def test_unique_counts_pages_shared_after_a_fork_once_as_a_page_by_page_count_does(tree_of: Any) -> None:
    t = tree_of("32", "3")
    for _ in range(3):  # the processes are idle; another process mapping one of our pages would move it
        tree = snapshot_tree(t.master)
        expected = pages_only_the_tree_maps(list(tree.processes))
        if tree.unique == expected:
            break
    assert tree.unique == expected
    assert len(tree.processes) == 4
    master = tree.root
    workers_uss = sum(s.uss for pid, s in tree.processes.items() if pid != t.master)
    # the 32 MiB all four map is in no process's USS; counted once, it is in unique
    assert tree.unique >= master.uss + workers_uss + 32 * MiB
    assert tree.unique <= master.rss + workers_uss  # what is shared came from the master before the forks
    assert tree.rss >= 4 * 32 * MiB > tree.unique + 32 * MiB
    assert "each counted once" in tree.table() and f"unique: {tree.unique.kib}K" in tree.table()


@needs_root
def test_unique_leaves_out_pages_another_process_maps(tree_of: Any) -> None:
    t = tree_of("8", "1")
    whole = snapshot_tree(t.master)
    for _ in range(3):  # as above: another process mapping one of the worker's pages meanwhile moves it
        part = snapshot_tree(t.pids["workers"][0])  # the worker alone: the master maps its pages too
        expected = pages_only_the_tree_maps([t.pids["workers"][0]])
        if part.unique == expected:
            break
    assert part.unique is not None and whole.unique is not None
    assert part.unique < part.root.uss + 8 * MiB
    assert part.unique == expected


def test_unique_is_none_with_the_reason_where_kpagecount_cannot_be_read(tree_of: Any, tmp_path: Path) -> None:
    t = tree_of("1", "1")
    fs = _redirected_procfs(tmp_path, t.everyone(), children=True)  # a procfs without /proc/kpagecount
    tree = snapshot_tree(t.master, procfs=fs)
    assert tree.unique is None and "kpagecount" in tree.unique_note and "use pss" in tree.unique_note
    assert "unique: n/a" in tree.table()
    assert snapshot_tree(t.master, detail=False).unique is None
    assert "detail=True" in snapshot_tree(t.master, detail=False).unique_note


@needs_root
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to drop CAP_SYS_ADMIN")
def test_unique_is_none_where_pagemap_hides_the_frames(tree_of: Any) -> None:
    t = tree_of("1", "1")
    code = (f"from pytest_pmap._engine.tree import snapshot_tree\n"
            f"tree = snapshot_tree({t.master})\nprint(tree.unique, '|', tree.unique_note)")
    done = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", sys.executable, "-c", code],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("None | ") and "shows no page frame numbers" in done.stdout and "use pss" in done.stdout


@needs_root
def test_count_unique_names_a_process_that_exited_since_its_snapshot(tree_of: Any) -> None:
    t = tree_of("1", "1", "--zombie")
    gone = subprocess.Popen(["sleep", "30"])
    before = snapshot(gone.pid)
    gone.kill()
    gone.wait()
    count = count_unique(ProcFS(), [snapshot(t.master), before])
    assert count.unique is not None and f"PID {gone.pid} exited" in count.note


# -- TreeDiff ------------------------------------------------------------------------------------------


def test_a_worker_started_after_the_baseline_counts_as_grown(tree_of: Any) -> None:
    t = tree_of("1", "1")
    before = snapshot_tree(t.master, unique=False)
    t.ask("fork")
    new = t.pids["workers"][-1]
    after = snapshot_tree(t.master, unique=False)
    diff = after.diff(before)
    assert isinstance(diff, TreeDiff) and list(diff.appeared) == [new] and not diff.exited
    assert set(diff.processes) == set(before.processes)
    assert diff.growth.rss == after.rss - before.rss and diff.growth.rss >= after.processes[new].rss
    assert {c.pid for c in diff.new_mappings()} >= {new}
    assert sum(c.new for c in diff.new_mappings() if c.pid == new) == after.processes[new].mapped
    text = diff.render()
    assert f"+{new:>7} {t.master:>8}" in text and "(appeared)" in text
    assert f"{new}:   " in text  # the new worker's own diff follows the table


def test_the_process_that_grew_is_named_with_its_diff(tree_of: Any) -> None:
    t = tree_of("1", "2")
    before = snapshot_tree(t.master, unique=False)
    t.ask("grow 24")
    grower = t.pids["workers"][0]
    diff = snapshot_tree(t.master, unique=False).diff(before)
    assert diff.ranked("uss")[0].pid == grower
    text = diff.render(metric="uss", limit=5)
    lines = text.splitlines()
    assert lines[1].startswith(f"grew most: PID {grower} (") and f", child of {t.master}: uss +2" in lines[1]
    assert "USS growth" in lines[2]
    assert any(line.startswith(f"~{grower:>7}") for line in lines)
    assert any("+24576" in line and "[ anon ]" in line for line in lines)  # the 24 MiB mapping, in pmap -x columns
    brief = diff.brief(3, "uss").splitlines()
    assert brief[0] == lines[1] and brief[1].split() == ["Address", "Kbytes", "RSS", "Dirty", "Mode", "Mapping"]
    assert any("+24576" in line for line in brief) and len(brief) <= 7  # grew most, titles, 3 rows, "and N more", summary


def test_a_process_that_exited_and_a_reused_pid_are_told_apart(tree_of: Any) -> None:
    t = tree_of("1", "2")
    before = snapshot_tree(t.master, unique=False)
    victim = t.pids["workers"][1]
    os.kill(victim, signal.SIGKILL)
    while victim in snapshot_tree(t.master, unique=False).processes:
        time.sleep(0.02)
    after = snapshot_tree(t.master, unique=False)
    diff = after.diff(before)
    assert list(diff.exited) == [victim] and not diff.appeared
    assert diff.growth.rss == after.rss - before.rss < 0
    assert f"-{victim:>7}" in diff.render() and "(exited)" in diff.render()
    reused = TreeSnapshot.of({**after.processes, victim: _restarted(before.processes[victim])})
    again = reused.diff(before)
    assert list(again.exited) == [victim] and list(again.appeared) == [victim]


def _restarted(snap: Snapshot) -> Snapshot:
    data = snap.to_json()
    data["start_time"] += 1
    return Snapshot.from_json(data)


def test_a_tree_and_a_single_process_are_not_compared(tree_of: Any) -> None:
    t = tree_of("1", "1")
    tree, one = snapshot_tree(t.master, unique=False), snapshot(t.master)
    from pytest_pmap import MapDiff

    for before, after in ((tree, one), (one, tree)):
        with pytest.raises(UsageError, match=r"cannot diff .* take both with the tree \(snapshot_tree\(\), or "):
            MapDiff.between(before, after)
    with pytest.raises(UsageError, match=r"take both with the tree \(snapshot_tree\(\), or `pytest-pmap snapshot"):
        tree.diff(one)


@pytest.mark.parametrize(("fmt", "limit", "message"), [
    ("q", None, "'q' is not a diff format: give 'x' .* or 'd'"),
    ("x", 0, r"limit=0: give a whole number of 1 or more"),
    ("d", -1, r"limit=-1: give a whole number"),
    ("x", 2.5, r"limit=2.5: give a whole number"),
    ("x", True, r"limit=True: give a whole number"),
])
def test_a_diff_refuses_what_it_cannot_render(tree_of: Any, fmt: str, limit: Any, message: str) -> None:
    t = tree_of("1", "1")
    before = snapshot_tree(t.master, unique=False)
    for diff in (snapshot_tree(t.master, unique=False).diff(before),
                 snapshot(t.master).diff(before.processes[t.master])):
        with pytest.raises(UsageError, match=message):
            diff.render(fmt, limit=limit)


# -- files and text ------------------------------------------------------------------------------------


def test_a_tree_renders_as_pmap_does_each_process_in_tree_order(tree_of: Any) -> None:
    t = tree_of("1", "2", "--grandchild")
    tree = snapshot_tree(t.master, unique=False)
    for fmt in ("default", "x", "d", "X", "XX"):
        assert tree.render(fmt) == "".join(s.render(fmt) for s in tree.processes.values())
    table = tree.table().splitlines()
    assert table[0].startswith(f"{t.master}:   ") and table[0].endswith("(process tree: 4 processes)")
    rows = {int(line.split()[0]): line for line in table[2:6]}
    assert set(rows) == t.everyone()
    command = f"{sys.executable} {HELPERS / 'forked_tree.py'}"
    assert rows[t.pids["grandchild"]].endswith(f"      {command} 1 2 --grandchild")  # two levels down
    assert rows[t.master].endswith(f"  {command} 1 2 --grandchild")


def test_tree_files_round_trip_and_bad_ones_are_clear_errors(tree_of: Any, tmp_path: Path) -> None:
    t = tree_of("2", "2")
    tree = snapshot_tree(t.master)
    path = tree.save(tmp_path / "tree.json")
    loaded = load_snapshot(path)
    assert isinstance(loaded, TreeSnapshot) and loaded.table() == tree.table()
    assert TreeSnapshot.load(path).table() == tree.table()
    assert loaded.render("x") == tree.render("x") and list(loaded.processes) == list(tree.processes)
    assert loaded.unique == tree.unique and loaded.totals == tree.totals and loaded.taken_at == tree.taken_at
    assert isinstance(load_snapshot(snapshot(t.master).save(tmp_path / "one.json")), Snapshot)
    good = json.loads(path.read_text())
    cases = {
        "version": ({**good, "version": 99}, "is a version 99 tree snapshot; this pytest-pmap reads version 1"),
        "empty": ({**good, "processes": []}, "is corrupt: ValueError: it holds no process"),
        "root": ({**good, "root": 1}, "is corrupt: ValueError: its first process is not its root, PID 1"),
        "process": ({**good, "processes": [{"format": "x"}]}, "(process 1) is not a pytest-pmap snapshot"),
    }
    for name, (data, message) in cases.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(json.dumps(data))
        with pytest.raises(SnapshotFileError) as err:
            load_snapshot(bad)
        assert str(bad) in str(err.value) and message in str(err.value), name
    with pytest.raises(SnapshotFileError, match=r"a process tree.s snapshot: read it with TreeSnapshot\.load"):
        Snapshot.load(path)
    with pytest.raises(SnapshotFileError, match=r"a single process.s snapshot, not a tree.s: read it with Snapshot\.load"):
        TreeSnapshot.load(tmp_path / "one.json")


# -- the shortcuts that make a tree cheap to read keep their meaning -------------------------------------


def test_pid_max_is_read_once_and_again_for_a_pid_at_or_above_it(tmp_path: Path) -> None:
    from pytest_pmap._engine.acquire import check_pid

    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    limit = tmp_path / "sys" / "kernel" / "pid_max"
    limit.write_text("100\n")
    fs = ProcFS(tmp_path)
    assert check_pid(99, fs) == 99
    with pytest.raises(UsageError, match=r"^150 is not a PID on this system: PIDs are below pid_max \(100\)$"):
        check_pid(150, fs)
    limit.write_text("200\n")  # raised: a PID at or above the old limit reads it again
    assert check_pid(150, fs) == 150


def test_smaps_rollup_of_kb_lines_and_of_anything_else_parse_alike() -> None:
    from pytest_pmap._engine.parse.fields import parse_fields, parse_rollup

    text = Path("/proc/self/smaps_rollup").read_bytes()
    head, _, body = text.partition(b"\n")
    for variant in (body, body.rstrip(b"\n"), body + b"THPeligible:    1\n", body.replace(b"Rss:", b"Rss:\t"),
                    body + b"Future_kB:   7 kB  \n", body + b"Words: a b\n"):
        assert parse_rollup(head + b"\n" + variant) == parse_fields(variant, 2)
    assert parse_rollup(head + b"\nTHPeligible:    1\n") == {"THPeligible": 1}
