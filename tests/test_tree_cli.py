"""`pytest-pmap tree`, `snapshot --tree`, `show` and `diff` of tree files, `watch --tree`, on live
process trees; `tree PID -x` against the real pmap given the tree's PIDs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PMAP, REPO, mask_drift, mask_loose, ours_argv, run

from pytest_pmap import snapshot
from pytest_pmap._engine.tree import snapshot_tree


def ours(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ours_argv(), *args], capture_output=True, text=True, cwd=REPO, errors="surrogateescape")


def _listing(text: str, loose: bool, everything: bool) -> str:
    """The listing with the columns that drift hidden: Pss (as the other oracle tests do), and for
    -X tables also Referenced, which the kernel's page aging moves in idle forked processes."""
    if not loose:
        return mask_drift(text)
    out = []
    column = -1
    for line in mask_loose(text, everything).split("\n"):
        tokens = line.split(" ")
        if tokens[0] == "Address" and "Referenced" in tokens:
            column = tokens.index("Referenced")
        elif column >= 0 and len(tokens) > column and re.fullmatch(r"[-r][-w][-x][ps]", tokens[1]):
            tokens[column] = "#"
        elif column >= 0 and tokens and tokens[0] and tokens[0][0].isdigit() and line.endswith("KB"):
            tokens[column - 5] = "#"  # the totals line starts at the Size column
        out.append(" ".join(tokens))
    return "\n".join(out)


@pytest.mark.skipif(PMAP is None, reason="procps pmap is not installed (the oracle)")
@pytest.mark.parametrize("flags", [["-x"], ["-d"], ["--default"], ["-X"], ["-XX"], ["-x", "-q"], ["-d", "-p"]], ids=str)
def test_tree_with_a_format_prints_every_process_as_pmap_does_given_their_pids(flags: list[str], tree_of: Any) -> None:
    t = tree_of("2", "2", "--grandchild")
    pids = [str(pid) for pid in snapshot_tree(t.master, unique=False).processes]
    assert len(pids) == 4 and pids[0] == str(t.master)
    pmap_flags = [f for f in flags if f != "--default"]
    x_table = any(f.startswith("-X") for f in flags)
    everything = "-XX" in flags
    theirs = mine = ""
    for _ in range(10):  # Pss and Referenced of the pages the tree shares with other processes move as they run
        if x_table:  # pmap 4.0.2 carries -X totals from one PID to the next (fixed in 4.0.4): one PID at a time
            theirs = "".join(run(["pmap", *pmap_flags, pid]).split("--stderr--")[0] for pid in pids)
        else:
            theirs = run(["pmap", *pmap_flags, *pids]).split("--stderr--")[0]
        mine = run([*ours_argv(), "tree", str(t.master), *flags]).split("--stderr--")[0]
        theirs, mine = _listing(theirs, x_table, everything), _listing(mine, x_table, everything)
        if theirs == mine:
            break
    assert mine == theirs


def test_tree_prints_the_table_with_the_totals_and_unique(tree_of: Any) -> None:
    t = tree_of("4", "2")
    done = ours("tree", str(t.master))
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{t.master}:   ") and lines[0].endswith("(process tree: 3 processes)")
    assert lines[1].split() == ["PID", "PPID", "RSS", "PSS", "USS", "Command"]
    assert {int(line.split()[0]) for line in lines[2:5]} == t.everyone()
    assert lines[6].startswith("3 processes ")
    assert lines[7].startswith("unique: ")
    assert lines[8].startswith("mapped: ") and "writeable/private: " in lines[8]


def test_snapshot_tree_show_and_diff_on_tree_files(tree_of: Any, tmp_path: Path) -> None:
    t = tree_of("1", "1")
    before = tmp_path / "before.json"
    saved = ours("snapshot", "--tree", str(t.master), "-o", str(before))
    assert saved.returncode == 0 and saved.stdout.startswith(f"pytest-pmap: saved the tree of PID {t.master} (2 processes, ")
    lone = subprocess.Popen(["sleep", "30"])
    try:
        alone = ours("snapshot", "--tree", str(lone.pid), "-o", str(tmp_path / "alone.json"))
    finally:
        lone.kill()
        lone.wait()
    assert alone.stdout.startswith(f"pytest-pmap: saved the tree of PID {lone.pid} (1 process, "), alone.stdout
    t.ask("fork")
    t.ask("grow 8")
    after = tmp_path / "after.json"
    assert ours("snapshot", "--tree", str(t.master), "-o", str(after)).returncode == 0
    shown = ours("show", str(before))
    assert shown.returncode == 0 and shown.stdout.splitlines()[0].endswith("(process tree: 2 processes)")
    listing = ours("show", str(before), "-x")
    assert listing.stdout.count("total kB") == 2 and listing.stdout.startswith(f"{t.master}:   ")
    diff = ours("diff", str(before), str(after), "--top", "3")
    assert diff.returncode == 0, diff.stderr
    new = t.pids["workers"][-1]
    assert f"\n+{new:>7} {t.master:>8} " in diff.stdout and "(appeared)" in diff.stdout
    assert f"grew most: PID {t.pids['workers'][0]} (" in diff.stdout or f"grew most: PID {new} (" in diff.stdout
    live = ours("diff", "--tree", str(before), str(t.master))
    assert live.returncode == 0 and "(appeared)" in live.stdout
    mixed = ours("diff", str(before), str(t.master))
    assert mixed.returncode == 1 and mixed.stdout == ""
    assert mixed.stderr == (f"pytest-pmap diff: cannot diff a snapshot of the process tree of PID {t.master} with one of "
                            f"the single process {t.master}: take both with the tree (snapshot_tree(), or "
                            "`pytest-pmap snapshot --tree` and `pytest-pmap diff --tree`)\n")


def test_watch_tree_sums_the_tree_and_counts_its_processes(tree_of: Any) -> None:
    t = tree_of("1", "2")
    done = ours("watch", "--tree", str(t.master), "-c", "2", "-n", "0.05")
    assert done.returncode == 0 and done.stderr == ""
    first, second = done.stdout.splitlines()
    one = snapshot(t.master, detail=False)
    mapped = int(re.search(r"  mapped: (\d+)K ", first)[1])  # type: ignore[index]
    assert mapped > 2 * one.mapped.kib  # three processes of about the same size
    assert re.fullmatch(r"\d\d:\d\d:\d\d  mapped: \d+K    writeable/private: \d+K    shared: \d+K    processes: 3", first)
    assert re.fullmatch(r".*shared: \d+K    \([-+]\d+K / [-+]\d+K / [-+]\d+K\)    processes: 3", second)


def test_tree_of_a_process_that_is_not_there_is_one_line() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    done = ours("tree", str(gone.pid))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"pytest-pmap tree: PID {gone.pid} exited or is not visible here")
    assert done.stderr.count("\n") == 1


def test_show_names_a_bad_tree_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"format": "pytest-pmap-tree", "version": 1, "root": 1, "processes": []}))
    done = ours("show", str(bad))
    assert done.returncode == 1
    assert done.stderr == f"pytest-pmap show: snapshot file '{bad}' is corrupt: ValueError: it holds no process\n"
