"""CI at scale, without pytest in the way: `pytest-pmap merge` (shards into one results file),
history lines appended whole by concurrent writers, and `pytest-pmap trend`."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from pytest_pmap import MiB
from pytest_pmap._gate.compare import compare
from pytest_pmap._gate.environment import Environment
from pytest_pmap._gate.history import COLUMNS, HistoryFileError, append_history, history_line, read_history, revision
from pytest_pmap._gate.merge import merge, merge_files
from pytest_pmap._gate.results import ResultsFileError, RunResults
from pytest_pmap._gate.trend import sparkline, trend_lines
from pytest_pmap._measure.result import MemoryResult

HERE = Environment(machine="x86_64", python="CPython 3.11.7", kernel="6.1.0")


def result(nodeid: str, uss: Optional[int]) -> MemoryResult:
    return MemoryResult(nodeid, {"uss": uss, "rss": uss}, uss, 0)


def run(*results: MemoryResult, env: Environment = HERE, **outcome: Any) -> RunResults:
    return RunResults(tuple(results), env, 1.0, **outcome)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_pmap", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    run(result("t::a", 0), result("t::b", MiB)).save(tmp_path / "s1.json")
    run(result("t::c", 2 * MiB)).save(tmp_path / "s2.json")
    return tmp_path


# -- merge ------------------------------------------------------------------------------------------------

def test_merging_shards_keeps_every_test_in_order_and_lists_the_inputs(shards: Path) -> None:
    done = cli("merge", "s1.json", "s2.json", "-o", "all.json", cwd=shards)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "merged 2 files (3 tests) into all.json\n"
    merged = RunResults.load(shards / "all.json")
    assert [r.nodeid for r in merged.results] == ["t::a", "t::b", "t::c"]
    assert [(i.file, i.tests) for i in merged.inputs] == [("s1.json", 2), ("s2.json", 1)]
    assert merged.complete is None and not merged.samples
    assert "samples" not in json.loads((shards / "all.json").read_text())


def test_a_test_in_two_shards_is_an_error_naming_it_and_both_files(shards: Path) -> None:
    run(result("t::x", 0), result("t::b", 0)).save(shards / "s3.json")
    done = cli("merge", "s1.json", "s2.json", "s3.json", "-o", "all.json", cwd=shards)
    assert done.returncode == 1
    assert done.stderr.startswith("pytest-pmap merge: test 't::b' is in both s1.json and s3.json: ")
    assert "--samples" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (shards / "all.json").exists()


def test_samples_keeps_every_measurement_and_says_so(shards: Path) -> None:
    run(result("t::b", 3 * MiB)).save(shards / "again.json")
    done = cli("merge", "--samples", "s1.json", "again.json", "-o", "all.json", cwd=shards)
    assert done.returncode == 0, done.stderr
    assert "3 samples of 2 tests" in done.stdout
    data = json.loads((shards / "all.json").read_text())
    assert data["samples"] is True
    merged = RunResults.load(shards / "all.json")
    assert merged.samples
    assert [(r.nodeid, r.growth["uss"]) for r in merged.results] == [("t::a", 0), ("t::b", MiB), ("t::b", 3 * MiB)]
    # Without the flag, the same repeats are a file joined by hand:
    del data["samples"]
    (shards / "joined.json").write_text(json.dumps(data))
    with pytest.raises(ResultsFileError, match="names test 't::b' twice"):
        RunResults.load(shards / "joined.json")
    # and a samples file merged again needs --samples too:
    with pytest.raises(ResultsFileError, match="holds several samples"):
        merge([("all.json", merged)])


def test_differing_environments_are_recorded_and_the_gate_warns_of_them(tmp_path: Path) -> None:
    other = Environment(machine="x86_64", python="CPython 3.12.1", kernel="6.1.0")
    merged = merge([("a.json", run(result("t::a", 0))), ("b.json", run(result("t::b", 0), env=other))])
    assert merged.notes == ("b.json was measured with Python CPython 3.11.7 -> CPython 3.12.1 (against a.json)",)
    assert merged.inputs[1].environment == other
    merged.save(tmp_path / "m.json")
    assert RunResults.load(tmp_path / "m.json").notes == merged.notes
    comparison = compare(merged, run(result("t::a", 0), result("t::b", 0)))
    assert any("b.json was measured with Python" in w for w in comparison.warnings)


def test_an_incomplete_shard_makes_the_merged_run_incomplete() -> None:
    merged = merge([("a.json", run(result("t::a", 0), complete=True, exit_status=0)),
                    ("b.json", run(result("t::b", 0), complete=False, exit_status=2, incomplete_reason="interrupted: x"))])
    assert merged.complete is False
    assert merged.exit_status == 2
    assert merged.incomplete_reason == "b.json did not finish: interrupted: x, exit status 2"
    assert merged.outcome() == "b.json did not finish: interrupted: x, exit status 2"  # the status said once


def test_merging_never_writes_over_an_input(shards: Path) -> None:
    before = (shards / "s1.json").read_bytes()
    done = cli("merge", "s1.json", "s2.json", "-o", "./s1.json", cwd=shards)
    assert done.returncode == 1
    assert "is one of the inputs" in done.stderr
    assert (shards / "s1.json").read_bytes() == before
    with pytest.raises(ResultsFileError, match="given twice"):
        merge_files([shards / "s1.json", shards / "s1.json"], shards / "x.json")


def test_merge_expect_refuses_a_lost_shard_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    for n in (0, 1, 3):
        run(result(f"t::s{n}", 0), complete=True, exit_status=0).save(tmp_path / f"pmap-shard-{n}.json")
    shards = ["pmap-shard-0.json", "pmap-shard-1.json", "pmap-shard-3.json"]
    done = cli("merge", *shards, "--expect", "4", "-o", "all.json", "--history", "h.jsonl", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("pytest-pmap merge: --expect 4 files, got 3: pmap-shard-2.json is missing; "
                           "nothing was written\n")
    assert not (tmp_path / "all.json").exists() and not (tmp_path / "h.jsonl").exists()
    # named otherwise, the files given are listed; one too many is refused the same way
    (tmp_path / "other.json").write_bytes((tmp_path / "pmap-shard-3.json").read_bytes())
    done = cli("merge", "pmap-shard-0.json", "other.json", "--expect", "3", "-o", "all.json", cwd=tmp_path)
    assert done.returncode == 2
    assert "--expect 3 files, got 2: missing: got pmap-shard-0.json, other.json; nothing was written" in done.stderr
    done = cli("merge", *shards, "--expect", "2", "-o", "all.json", cwd=tmp_path)
    assert done.returncode == 2 and "--expect 2 files, got 3: more than expected" in done.stderr
    assert not (tmp_path / "all.json").exists()
    assert cli("merge", *shards, "--expect", "3", "-o", "all.json", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("history", ["base.json", "notes.txt"])
def test_merge_history_refuses_a_file_that_is_not_a_history_before_writing_anything(shards: Path, history: str) -> None:
    run(result("t::a", 0)).save(shards / "base.json")
    (shards / "notes.txt").write_text("my notes\n")
    before = (shards / history).read_bytes()
    done = cli("merge", "s1.json", "s2.json", "-o", "all.json", "--history", history, cwd=shards)
    assert done.returncode == 1
    assert done.stderr == (f"pytest-pmap merge: {history} is not a pytest-pmap history file (its first line is not a "
                           "run's); appending to it would mix a history into another file: name a new file\n")
    assert (shards / history).read_bytes() == before and not (shards / "all.json").exists()


def test_merge_history_that_cannot_be_appended_says_the_output_was_written(shards: Path) -> None:
    # /dev/full reads as zeros: not a history, refused before anything is written
    done = cli("merge", "s1.json", "s2.json", "-o", "all.json", "--history", "/dev/full", cwd=shards)
    assert done.returncode == 1 and "/dev/full is not a pytest-pmap history file" in done.stderr
    assert not (shards / "all.json").exists()
    # a history that passes the check but cannot be appended to (the file is past the size limit
    # of the process, as on a full disk): the output is written first, and the message says what
    # was and was not written
    for n in range(40):
        append_history(shards / "h.jsonl", run(result(f"t::{n}", 0)))
    before = (shards / "h.jsonl").read_bytes()
    assert len(before) > 8 << 10

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG rather than death, as a full disk's ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 10, 8 << 10))

    done = subprocess.run([sys.executable, "-m", "pytest_pmap", "merge", "s1.json", "s2.json", "-o", "all.json",
                           "--history", "h.jsonl"], cwd=shards, capture_output=True, text=True, preexec_fn=small_files)
    assert done.returncode == 1
    assert done.stderr == ("pytest-pmap merge: wrote all.json, but the run was not appended to the history: "
                           "cannot append to 'h.jsonl': File too large\n")
    assert RunResults.load(shards / "all.json").results and (shards / "h.jsonl").read_bytes() == before


def test_merge_history_named_as_the_output_says_it_is_the_output(shards: Path) -> None:
    done = cli("merge", "s1.json", "s2.json", "-o", "mm.json", "--history", "mm.json", cwd=shards)
    assert done.returncode == 1
    assert done.stderr == ("pytest-pmap merge: --history mm.json is the output mm.json: writing it would spoil that "
                           "file; give it a name of its own\n")


@pytest.mark.parametrize(("content", "says"), [
    (None, "results file 'bad.json' does not exist"),
    (b"{not json", "results file 'bad.json' is not valid JSON"),
    (b'{"format": "something else"}', "results file 'bad.json' is not a pytest-pmap results file"),
])
def test_a_bad_input_is_one_line_naming_the_file(shards: Path, content: Optional[bytes], says: str) -> None:
    if content is not None:
        (shards / "bad.json").write_bytes(content)
    done = cli("merge", "s1.json", "bad.json", "-o", "all.json", cwd=shards)
    assert done.returncode == 1
    assert done.stderr.startswith(f"pytest-pmap merge: {says}")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (shards / "all.json").exists()


# -- history ----------------------------------------------------------------------------------------------

def test_a_history_line_holds_the_commit_the_branch_and_every_tests_figures() -> None:
    line = history_line(run(result("t::a", MiB), result("t::b", None)), "abc123", "main")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = json.loads(line)
    assert (data["commit"], data["branch"], data["time"]) == ("abc123", "main", 1.0)
    assert data["columns"] == list(COLUMNS)
    figures = dict(zip(COLUMNS, data["tests"]["t::a"]))
    assert figures["uss_growth"] == MiB and figures["new_mappings"] == 0
    assert data["environment"]["python"] == "CPython 3.11.7"


def test_the_commit_and_branch_come_from_the_ci_or_else_git(tmp_path: Path) -> None:
    assert revision({"GITHUB_SHA": "f00", "GITHUB_REF_NAME": "12/merge", "GITHUB_HEAD_REF": "fix-leak"}) == ("f00", "fix-leak")
    assert revision({"CI_COMMIT_SHA": "b4r", "CI_COMMIT_REF_NAME": "dev"}) == ("b4r", "dev")
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    repo.mkdir()
    plain.mkdir()
    env = {"GIT_CONFIG_GLOBAL": os.devnull, "HOME": str(tmp_path), "PATH": os.environ["PATH"]}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", "-b", "topic"], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    assert revision({}, str(repo)) == (head, "topic")
    assert revision({"GITHUB_SHA": "f00"}, str(repo)) == ("f00", "topic")
    assert revision({}, str(plain)) == ("", "")  # no CI, no repository: recorded as unknown


WRITER = """
import sys
from pytest_pmap._gate.history import append_history
from pytest_pmap._gate.results import RunResults
from pytest_pmap._measure.result import MemoryResult
name, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = RunResults(tuple(MemoryResult(f"t::{name}_{i:05}", {"uss": i}, i, 0) for i in range(count)))
for _ in range(20):
    append_history(path, run)
"""


def test_concurrent_runs_append_whole_lines_that_never_interleave(tmp_path: Path) -> None:
    # Lines of about 400 KB, far over a pipe's or a page's size: written in pieces, they would mix.
    path = tmp_path / "history.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}", "4000", str(path)],
                                env={**os.environ, "GITHUB_SHA": f"sha{n}"}) for n in range(6)]
    assert [w.wait(timeout=120) for w in writers] == [0] * 6
    entries, problems = read_history(path)
    assert problems == []
    assert len(entries) == 6 * 20
    assert all(len(e.tests) == 4000 and len({n.split("_")[0] for n in e.tests}) == 1 for e in entries)
    assert sorted({e.commit for e in entries}) == [f"sha{n}" for n in range(6)]


def test_a_broken_line_is_skipped_and_counted_and_the_rest_still_read(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    append_history(path, run(result("t::a", 0)))
    with open(path, "ab") as f:
        f.write(b'{"format":"pytest-pmap-history","version":1,"ti')  # a write cut short: no newline
    append_history(path, run(result("t::a", MiB)))
    entries, problems = read_history(path)
    assert [e.figure("t::a", "uss_growth") for e in entries] == [0, MiB]
    assert len(problems) == 1 and problems[0].startswith("line 2: ")
    (tmp_path / "other.txt").write_text("hello\n")
    with pytest.raises(HistoryFileError, match=r"history file '.*other\.txt' holds no run"):
        read_history(tmp_path / "other.txt")
    with pytest.raises(HistoryFileError, match="does not exist"):
        read_history(tmp_path / "missing.jsonl")


# -- trend ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "line"), [
    ([0, 1, 2, 3, 4, 5, 6, 7], "▁▂▃▄▅▆▇█"),
    ([5, 5, 5], "▁▁▁"),
    ([0, None, 10], "▁·█"),
    ([None, None], "··"),
    ([-10, 0, 10], "▁▅█"),
])
def test_sparklines(values: list[Optional[int]], line: str) -> None:
    assert sparkline(values) == line


def test_trend_puts_the_largest_movers_first_and_filters_by_glob(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    for i in range(4):
        append_history(path, RunResults((result("t::steady", MiB), result("t::leak[1]", i * MiB), result("t::gone", 0)
                                         if i < 2 else result("t::new", 0)), HERE, 1000.0 + i))
    done = cli("trend", "h.jsonl", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("uss_growth of 4 tests over 4 runs")
    assert lines[2].split() == ["+3072", "+0", "+3072", "+0", "+3072", "▁▃▆█", "t::leak[1]"]
    assert [line.split()[-1] for line in lines[3:]] == ["t::gone", "t::new", "t::steady"]
    assert "██··" not in done.stdout and "▁▁··" in done.stdout
    only = cli("trend", "h.jsonl", "--test", "t::leak[1]", cwd=tmp_path)
    assert [line.split()[-1] for line in only.stdout.splitlines()[2:]] == ["t::leak[1]"]
    bad = cli("trend", "h.jsonl", "--metric", "uss", cwd=tmp_path)
    assert bad.returncode == 1 and "unknown metric 'uss'" in bad.stderr


def test_trend_says_which_lines_it_skipped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    append_history(path, run(result("t::a", 0)))
    with open(path, "ab") as f:
        f.write(b"garbage\n")
    done = cli("trend", "h.jsonl", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr.startswith("pytest-pmap trend: skipped 1 line of h.jsonl that could not be read (line 2: ")
    assert trend_lines(read_history(path)[0], "uss_growth", "x*") is None


def test_trend_of_a_glob_that_matches_no_test_is_an_error(tmp_path: Path) -> None:
    append_history(tmp_path / "h.jsonl", run(result("t::a", 0)))
    done = cli("trend", "h.jsonl", "--test", "nomatch*", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "pytest-pmap trend: no test matches 'nomatch*' in the 1 run read of h.jsonl\n"


def test_trend_and_report_read_only_the_last_runs_from_the_end_of_the_history(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'{"format":"pytest-pmap-history", a line no reader can parse\n')
    for i in range(100):
        append_history(path, RunResults((result("t::a", i * MiB), result(f"t::only{i}", 0)), HERE, 1000.0 + i))
    entries, problems = read_history(path, last=5)
    assert [e.time for e in entries] == [1095.0, 1096.0, 1097.0, 1098.0, 1099.0] and problems == []
    assert len(read_history(path)[1]) == 1  # the whole file: the broken first line is found
    done = cli("trend", "h.jsonl", "--test", "t::a", cwd=tmp_path)  # 30 runs by default, the first never read
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("uss_growth of 1 test over 30 runs")
    every = cli("trend", "h.jsonl", "--test", "t::a", "--last", "0", cwd=tmp_path)
    assert every.stdout.startswith("uss_growth of 1 test over 100 runs")
    assert "skipped 1 line of h.jsonl that could not be read (line 1: " in every.stderr
    header, row = every.stdout.splitlines()[1:3]
    assert "last 60 runs" in header
    spark = next(word for word in row.split() if set(word) <= set("▁▂▃▄▅▆▇█·"))
    assert len(spark) == 60
    run(result("t::a", 0)).save(tmp_path / "r.json")
    page = cli("report", "r.json", "--history", "h.jsonl", "--last", "7", "-o", "r.html", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    assert "History (7 runs)" in (tmp_path / "r.html").read_text()


# -- what the commands say ----------------------------------------------------------------------------------

def test_report_of_samples_counts_tests_and_samples(shards: Path) -> None:
    done = cli("report", "--samples", "s1.json", "s2.json", "s1.json", "-o", "r.html", cwd=shards)
    assert done.returncode == 1 and "given twice" in done.stderr
    (shards / "again.json").write_bytes((shards / "s1.json").read_bytes())
    done = cli("report", "--samples", "s1.json", "s2.json", "again.json", "-o", "r.html", cwd=shards)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote report r.html (3 tests, 5 samples, ")
    assert "its row shows, of each figure, the largest of its samples" in (shards / "r.html").read_text()


def test_compare_and_report_find_the_nearest_pyproject_and_say_which(shards: Path) -> None:
    (shards / "pyproject.toml").write_text('[tool.pytest_pmap]\naccept = { "t::c" = "a bigger cache (#7)" }\n')
    run(result("t::a", 0), result("t::b", MiB), result("t::c", 0)).save(shards / "base.json")
    merged = cli("merge", "s1.json", "s2.json", "-o", "head.json", cwd=shards)
    assert merged.returncode == 0
    (shards / "sub" / "deeper").mkdir(parents=True)
    done = cli("compare", "../../base.json", "../../head.json", cwd=shards / "sub" / "deeper")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted: t::c +2048K" in done.stdout and "a bigger cache (#7)" in done.stdout
    assert done.stdout.endswith("accept: 1 glob from ../../pyproject.toml [tool.pytest_pmap]\n")
    page = cli("report", "../head.json", "--baseline", "../base.json", "-o", "r.html", cwd=shards / "sub")
    assert page.returncode == 0 and page.stdout.startswith("accept: 1 glob from ../pyproject.toml [tool.pytest_pmap]\n")


def test_an_accept_glob_of_a_test_that_did_not_regress_says_so() -> None:
    base, head = run(result("t::a", 0)), run(result("t::a", 0))
    comparison = compare(base, head, accept={"t::a": "known"}, accept_source="pyproject.toml [tool.pytest_pmap]")
    assert comparison.warnings == ("accept 't::a' in pyproject.toml [tool.pytest_pmap] matched no regressing test: "
                                   "if the increase is gone, it can be removed",)


def test_an_output_in_a_folder_that_takes_no_new_file_says_so(shards: Path) -> None:
    done = cli("merge", "s1.json", "-o", "/proc/version", cwd=shards)
    assert done.returncode == 1
    assert done.stderr == ("pytest-pmap merge: cannot write '/proc/version': no new file can be created in its folder "
                           "'/proc' (No such file or directory); write it to another folder\n")


def test_the_pmap_table_lists_only_tests_that_grew_and_says_how_many() -> None:
    from pytest_pmap._plugin.report import summary_table

    grew = [MemoryResult(f"t::g{i}", {"rss": (i + 1) * MiB}, 0, 0) for i in range(3)]
    flat = [MemoryResult(f"t::f{i}", {"rss": 0}, 0, 0) for i in range(4)]
    lines = summary_table([*grew, *flat], 7)
    assert [line.split()[-1] for line in lines[2:-1]] == ["t::g2", "t::g1", "t::g0"]
    assert lines[-1] == "7 tests measured; the 3 that grew are listed, the most first"
    assert summary_table([*grew, *flat], 2)[-1] == "7 tests measured, 3 grew; the 2 that grew most are listed"
    assert summary_table(flat, 7)[-1] == "4 tests measured; none grew in RSS"


def test_the_pmap_table_ranks_by_rss_then_peak_keeping_ties_in_the_order_tests_ran() -> None:
    """A test whose RSS shrank but whose peak rose grew too (last, by its RSS); of two that grew
    alike, the one that ran first is listed first."""
    from pytest_pmap._plugin.report import summary_table

    results = [MemoryResult("t::a", {"rss": MiB}, 0), MemoryResult("t::b", {"rss": MiB}, 0),
               MemoryResult("t::c", {"rss": -MiB}, 3 * MiB), MemoryResult("t::d", {"rss": 0}, 0),
               MemoryResult("t::e", {"rss": 2 * MiB}, 0), MemoryResult("t::f", {"rss": None}, None)]
    lines = summary_table(results, 7)
    assert [line.split()[-1] for line in lines[2:-1]] == ["t::e", "t::a", "t::b", "t::c"]
    assert lines[-1] == "6 tests measured; the 4 that grew are listed, the most first"
