"""CI at scale in live pytest runs (pytester): shards merged and gated against, the history a run
appends (once, on the xdist controller, after the tests), the HTML report, accepted increases,
and the last line of a run the gate failed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_pmap._gate.history import read_history
from pytest_pmap._gate.results import RunResults

SUITE = """
import os
KEEP = []
HISTORY = os.environ.get("HISTORY_FILE")

def test_steady():
    # Nothing of the history may be written before or during the tests: it would move the heap measured.
    assert HISTORY is None or os.path.getsize(HISTORY) == int(os.environ["HISTORY_SIZE"])

def test_leaky():
    if os.environ.get("LEAK_MIB"):
        KEEP.append(b"x" * (int(os.environ["LEAK_MIB"]) << 20))

def test_other():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_pmap", *args], cwd=cwd, capture_output=True, text=True)


def test_shards_merged_make_a_baseline_the_gate_reads(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.runpytest_subprocess("-k", "steady or other", "--pmap-json", "s1.json").assert_outcomes(passed=2)
    suite.runpytest_subprocess("-k", "leaky", "--pmap-json", "s2.json").assert_outcomes(passed=1)
    merged = cli("merge", "s1.json", "s2.json", "-o", "base.json", cwd=suite.path)
    assert merged.returncode == 0, merged.stderr
    # Each shard ran a part of the suite and finished: the merged file is a whole baseline.
    steady = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    steady.assert_outcomes(passed=3)
    assert steady.ret == 0
    steady.stdout.fnmatch_lines(["no test regressed in uss_growth against baseline base.json*"])
    monkeypatch.setenv("LEAK_MIB", "4")
    leak = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    assert leak.ret == 1
    leak.stdout.fnmatch_lines(["*test_suite.py::test_leaky*", "*3 passed, 1 pmap regression in *"])
    # A file of samples is a baseline too.
    assert cli("merge", "--samples", "s1.json", "s2.json", "s1.json.copy", "-o", "samples.json",
               cwd=suite.path).returncode == 1  # (a missing input is an error)
    (suite.path / "s1b.json").write_bytes((suite.path / "s1.json").read_bytes())
    assert cli("merge", "--samples", "s1.json", "s2.json", "s1b.json", "-o", "samples.json", cwd=suite.path).returncode == 0
    monkeypatch.delenv("LEAK_MIB")
    suite.runpytest_subprocess("--pmap-baseline", "samples.json").assert_outcomes(passed=3)


def test_each_run_appends_one_history_line_after_its_tests(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    history = suite.path / "history.jsonl"
    monkeypatch.setenv("HISTORY_FILE", str(history))
    monkeypatch.setenv("GITHUB_SHA", "c0ffee")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    history.write_bytes(b"")
    monkeypatch.setenv("HISTORY_SIZE", "0")
    first = suite.runpytest_subprocess("--pmap-history", "history.jsonl")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["pmap: appended this run to history history.jsonl (* bytes)"])
    monkeypatch.setenv("HISTORY_SIZE", str(history.stat().st_size))
    suite.makeini("[pytest]\npmap_history = history.jsonl\n")  # the ini key, under xdist: the controller alone writes
    suite.runpytest_subprocess("-n", "2").assert_outcomes(passed=3)
    entries, problems = read_history(history)
    assert problems == []
    assert len(entries) == 2
    assert [(e.commit, e.branch) for e in entries] == [("c0ffee", "main")] * 2
    assert all(sorted(e.tests) == ["test_suite.py::test_leaky", "test_suite.py::test_other", "test_suite.py::test_steady"]
               for e in entries)
    trend = cli("trend", "history.jsonl", cwd=suite.path)
    assert trend.returncode == 0 and "over 2 runs" in trend.stdout


def test_a_history_that_is_another_file_stops_the_run_before_the_tests(suite: pytest.Pytester) -> None:
    (suite.path / "notes.txt").write_text("my notes\n")
    result = suite.runpytest("--pmap-history", "notes.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pmap-history: notes.txt is not a pytest-pmap history file*"])
    assert (suite.path / "notes.txt").read_text() == "my notes\n"
    result = suite.runpytest("--pmap-history", "base.json", "--pmap-json", "base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is the same file as --pmap-history base.json*"])


def test_the_html_report_is_written_with_the_history_charts(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--pmap-history", "h.jsonl", "--pmap-html", "report.html")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pmap: wrote HTML report report.html (3 tests)"])
    page = (suite.path / "report.html").read_text()
    assert "<h2>History (1 run)</h2>" in page and "test_suite.py::test_leaky" in page


def test_the_html_report_says_which_history_lines_it_left_out(suite: pytest.Pytester) -> None:
    suite.runpytest_subprocess("--pmap-history", "h.jsonl").assert_outcomes(passed=3)
    with open(suite.path / "h.jsonl", "ab") as history:
        history.write(b'{"format": "pytest-pmap-history", "cut sho\n')  # a run cut short by a full disk
    result = suite.runpytest_subprocess("--pmap-history", "h.jsonl", "--pmap-html", "report.html")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pmap: the HTML report's history charts left out 1 line of h.jsonl that could not be "
                                 "read (line 2: *)",
                                 "pmap: wrote HTML report report.html (3 tests)"])
    assert "<h2>History (2 runs)</h2>" in (suite.path / "report.html").read_text()


ACCEPT = """
[tool.pytest_pmap]
accept = {{ "test_suite.py::test_leak*" = "the cache is meant to grow", {extra} }}
"""


def test_an_accepted_increase_passes_with_its_reason_and_an_unused_glob_is_reported(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.runpytest_subprocess("--pmap-save-baseline", "base.json").assert_outcomes(passed=3)
    suite.makefile(".toml", pyproject=ACCEPT.format(extra='"test_suite.py::test_renamed" = "old"'))
    monkeypatch.setenv("LEAK_MIB", "4")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-markdown", "pr.md")
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "no test regressed in uss_growth against baseline base.json*",
        "WARNING: accept 'test_suite.py::test_renamed' in pyproject.toml [[]tool.pytest_pmap] matches no test of this run*",
        "accepted: test_suite.py::test_leaky +4*K (*% of its allowance 512K): the cache is meant to grow*",
    ])
    markdown = (suite.path / "pr.md").read_text()
    assert "### Accepted increases" in markdown and "the cache is meant to grow" in markdown


def test_a_bad_accept_table_is_a_usage_error_naming_it(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", pyproject='[tool.pytest_pmap]\naccept = { "t*" = 3 }\n')
    result = suite.runpytest("--pmap")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pyproject.toml [[]tool.pytest_pmap] accept[[]'t[*]']: give the reason as a non-empty "
                                 "string*"])


def test_a_regression_names_the_next_step_and_improvements_are_named(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAK_MIB", "4")
    suite.runpytest_subprocess("--pmap-save-baseline", "base.json").assert_outcomes(passed=3)
    monkeypatch.setenv("LEAK_MIB", "0")
    better = suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-markdown", "pr.md")
    assert better.ret == 0
    better.stdout.fnmatch_lines(["1 improved beyond tolerance: test_suite.py::test_leaky (-4*K); update the baseline to "
                                 "keep the gain (a later increase is then measured from there): "
                                 "pytest --pmap-save-baseline base.json"])
    assert "### Improvements" in (suite.path / "pr.md").read_text()
    monkeypatch.setenv("LEAK_MIB", "8")
    worse = suite.runpytest_subprocess("--pmap-baseline", str(suite.path / "base.json"), "--pmap-markdown", "pr.md")
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(['next: fix each increase; or, where one is expected, accept it in pyproject.toml under '
                                '[[]tool.pytest_pmap] accept, a line per test or glob ("test_suite.py::test_leaky" = "why it '
                                'grew"), update the baseline (pytest --pmap-save-baseline base.json), or loosen the tolerance*'])
    markdown = (suite.path / "pr.md").read_text()
    assert markdown.startswith("## pytest-pmap: memory per test, against baseline base.json\n")
    assert str(suite.path) not in markdown, "the runner's absolute path means nothing to a reviewer"
    assert "**Next step** for each" in markdown


def test_the_html_option_is_in_the_help_and_the_json_still_round_trips(suite: pytest.Pytester) -> None:
    suite.runpytest("--help").stdout.fnmatch_lines(["*--pmap-history=PATH*", "*--pmap-html=PATH*"])
    suite.runpytest_subprocess("--pmap-json", "r.json").assert_outcomes(passed=3)
    data = json.loads((suite.path / "r.json").read_text())
    assert "samples" not in data and len(RunResults.load(suite.path / "r.json").results) == 3
