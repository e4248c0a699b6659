"""What can go wrong with the gate, results files and budgets (docs/faults.md, "Round two: the gate,
results and budgets"). The pure functions are tested directly; pytester runs (one pytest process
each) where the pytest layer is the point."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from pytest_pmap import MiB
from pytest_pmap._gate.compare import compare
from pytest_pmap._gate.environment import Environment
from pytest_pmap._gate.results import ResultsFileError, RunResults
from pytest_pmap._measure.budget import BudgetConfig, parse_limits
from pytest_pmap._measure.result import MemoryResult
from pytest_pmap.errors import BudgetSyntaxError

HERE = Environment(machine="x86_64", python="CPython 3.11.7")


def result(nodeid: str, uss: Optional[int]) -> MemoryResult:
    return MemoryResult(nodeid, {"uss": uss, "rss": uss}, uss, 0)


def run(*results: MemoryResult, **outcome: Any) -> RunResults:
    return RunResults(tuple(results), HERE, 1.0, **outcome)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def compare_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_pmap", "compare", *args], cwd=cwd, capture_output=True, text=True)


def results_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- an empty baseline, and a baseline that gates nothing ----------------------------------------------

def test_an_empty_baseline_is_refused_and_gates_nothing_unless_asked(tmp_path: Path) -> None:
    path = run().save(tmp_path / "base.json")  # what a run that measured nothing writes
    with pytest.raises(ResultsFileError, match=r"baseline file '.*base\.json' has no results: was it saved from the right run\?"):
        RunResults.load(path, "baseline file")
    base = RunResults.load(path, "baseline file", allow_empty=True)
    head = run(result("t::a", 100 * MiB), result("t::b", 0))
    refused = compare(base, head, baseline="baseline base.json")
    assert not refused.passed
    assert refused.headline() == ("no test was gated in uss_growth: the baseline base.json has no results "
                                  "(was it saved from the right run?): all 2 tests are new")
    allowed = compare(base, head, baseline="baseline base.json", allow_ungated=True)
    assert allowed.passed
    assert "WARNING: no test was gated: the baseline base.json has no results" in "\n".join(allowed.table())


def test_an_empty_baseline_stops_the_gate_and_compare_unless_allowed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    nothing = pytester.runpytest_subprocess("-k", "no_such_test", "--pmap-save-baseline", "empty.json")
    nothing.stdout.fnmatch_lines(["pmap: ERROR: baseline not saved to empty.json: the run measured no test, and a "
                                  "baseline with no results would gate nothing"])
    assert not (pytester.path / "empty.json").exists()
    run().save(pytester.path / "empty.json")  # as an older pytest-pmap saved it
    refused = pytester.runpytest_subprocess("--pmap-baseline", "empty.json")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --pmap-baseline: baseline file 'empty.json' has no results: was it saved from "
                                  "the right run? *pass --pmap-allow-empty-baseline"])
    allowed = pytester.runpytest_subprocess("--pmap-baseline", "empty.json", "--pmap-allow-empty-baseline",
                                            "--pmap-json", "head.json")
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["no test was gated in uss_growth: the baseline empty.json has no results*",
                                  "WARNING: no test was gated: *"])
    out = compare_cli("empty.json", "head.json", cwd=pytester.path)
    assert (out.returncode, out.stdout) == (2, "")
    assert "pass --allow-empty-baseline" in out.stderr
    assert compare_cli("empty.json", "head.json", "--allow-empty-baseline", cwd=pytester.path).returncode == 0


def test_a_baseline_that_shares_no_test_or_no_measured_value_with_the_run_gates_nothing_and_fails() -> None:
    base = run(result("tests/test_a.py::test_x", 0), result("tests/test_a.py::test_y", 0))
    elsewhere = run(result("test_a.py::test_x", 64 * MiB), result("test_a.py::test_y", 0))  # saved from another rootdir
    c = compare(base, elsewhere)
    assert [r.status for r in c.rows] == ["new", "new", "gone", "gone"]
    assert not c.passed
    assert c.headline() == ("no test was gated in uss_growth: none of this run's 2 tests is in the baseline, which has 2 "
                            "(node IDs are relative to the rootdir: was it saved from another folder or another suite?)")
    unmeasured = compare(run(MemoryResult("t::a", peak_growth=None)), run(MemoryResult("t::a", peak_growth=MiB)),
                         "peak_growth")
    assert not unmeasured.passed
    assert "peak_growth was measured on only one side for every test" in unmeasured.headline()
    assert compare(base, elsewhere, allow_ungated=True).passed
    nothing_ran = compare(base, run())  # every test skipped or deselected
    assert not nothing_ran.passed
    assert nothing_ran.headline() == ("no test was gated in uss_growth: this run measured no test (were they all "
                                      "skipped or deselected?), and the baseline has 2: every one is gone")
    partly = compare(base, run(result("tests/test_a.py::test_x", 0), result("tests/test_new.py::test_z", 0)))
    assert partly.passed, "a run with new tests and some gated ones is a normal run"


# -- a test named twice ---------------------------------------------------------------------------------

def test_a_results_file_that_names_a_test_twice_is_an_error_naming_the_test_and_the_file(tmp_path: Path) -> None:
    data = run(result("t::a", 0), result("t::b", MiB)).to_json()
    data["results"].append(dict(data["results"][0], growth={"uss": 64 * MiB}))
    path = write(tmp_path / "r.json", data)
    with pytest.raises(ResultsFileError, match=r"results file '.*r\.json' names test 't::a' twice \(results 1 and 3\)"):
        RunResults.load(path)


def test_a_test_run_twice_in_a_session_is_written_once_with_its_last_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_twice="KEEP = []\n\ndef test_grows():\n    KEEP.append(b'x' * (len(KEEP) * 8 << 20))\n")
    out = pytester.runpytest_subprocess("test_twice.py", "test_twice.py", "--keep-duplicates", "--pmap-json", "r.json")
    out.assert_outcomes(passed=2)
    data = results_of(pytester.path / "r.json")
    assert [r["nodeid"] for r in data["results"]] == ["test_twice.py::test_grows"]
    assert data["results"][0]["growth"]["uss"] >= 8 * MiB, "the last run counts"
    assert len(RunResults.load(pytester.path / "r.json").results) == 1


# -- a run that did not finish --------------------------------------------------------------------------

def test_a_results_file_records_whether_its_run_finished_and_old_files_still_read(tmp_path: Path) -> None:
    stopped = run(result("t::a", 0), complete=False, exit_status=2, incomplete_reason="interrupted: KeyboardInterrupt")
    again = RunResults.load(stopped.save(tmp_path / "r.json"))
    assert (again.complete, again.exit_status, again.incomplete_reason) == (False, 2, "interrupted: KeyboardInterrupt")
    assert results_of(tmp_path / "r.json")["version"] == 1
    old = run(result("t::a", 0)).to_json()
    for key in ("complete", "exit_status", "incomplete_reason"):  # a file from before they were recorded
        del old[key]
    assert RunResults.load(write(tmp_path / "old.json", old)).complete is None
    with pytest.raises(ResultsFileError, match=r"is corrupt: TypeError: \"complete\" is 'yes'"):
        RunResults.load(write(tmp_path / "bad.json", dict(old, complete="yes")))

    from pytest_pmap._gate.results import load_baseline

    assert load_baseline(tmp_path / "old.json").complete is None, "an old baseline is still a baseline"
    with pytest.raises(ResultsFileError, match=(
        r"baseline file '.*r\.json' is from a run that did not finish: interrupted: KeyboardInterrupt, exit status 2; "
        r"the 1 tests it measured would be gated and the rest would pass as new\. Save it again from a whole run, "
        r"or pass --pmap-allow-incomplete-baseline")):
        load_baseline(tmp_path / "r.json")
    base = load_baseline(tmp_path / "r.json", allow_incomplete=True)
    c = compare(base, run(result("t::a", 0), result("t::b", 0), complete=False, exit_status=1,
                          incomplete_reason="stopped early: stopping after 1 failures"))
    assert c.passed
    assert c.warnings == (
        "the baseline is from a run that did not finish (interrupted: KeyboardInterrupt, exit status 2): "
        "tests it did not measure are new here, not gated",
        "this run did not finish (stopped early: stopping after 1 failures, exit status 1): "
        "tests it did not measure are gone, not gated",
    )


STOPS = {
    "-x": ("import pytest\ndef test_a():\n    assert False\ndef test_b():\n    pass\n", "", ["-x"],
           1, "stopped early: stopping after 1 failures"),
    "ctrl-c": ("def test_a():\n    raise KeyboardInterrupt\ndef test_b():\n    pass\n", "", [],
               2, "interrupted: KeyboardInterrupt"),
    "pytest.exit(0)": ("import pytest\ndef test_a():\n    pytest.exit('enough', returncode=0)\ndef test_b():\n    pass\n",
                       "", [], 0, "interrupted: enough"),
    "internal error": ("def test_a():\n    pass\ndef test_b():\n    pass\n",
                       "def pytest_runtest_logfinish(nodeid):\n    raise RuntimeError('a broken plugin')\n", [],
                       3, "pytest stopped with an internal error"),
    "collection error": ("def test_a():\n    pass\n", "", ["--continue-on-collection-errors"],
                         1, "1 collection error: the tests there never ran"),
    "finished": ("def test_a():\n    assert False\ndef test_b():\n    pass\n", "", [], 1, ""),
}


@pytest.mark.parametrize("how", list(STOPS))
def test_a_run_that_did_not_finish_says_so_in_its_results(pytester: pytest.Pytester, how: str) -> None:
    test, conftest, args, status, reason = STOPS[how]
    pytester.makepyfile(test_stops=test)
    if conftest:
        pytester.makeconftest(conftest)
    if how == "collection error":
        pytester.makepyfile(test_broken="import no_such_module_here\n")
    out = pytester.runpytest_subprocess("--pmap-json", "r.json", *args)
    assert out.ret == status
    data = results_of(pytester.path / "r.json")
    assert (data["complete"], data["exit_status"], data["incomplete_reason"]) == (not reason, status, reason)


def test_an_unfinished_run_is_not_saved_as_a_baseline_nor_gated_against(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_stops="import os\ndef test_a():\n    assert not os.environ.get('FAIL')\ndef test_b():\n    pass\n")
    monkeypatch.setenv("FAIL", "1")
    stopped = pytester.runpytest_subprocess("-x", "--pmap-json", "r.json", "--pmap-save-baseline", "base.json")
    stopped.stdout.fnmatch_lines([
        "pmap: wrote JSON results r.json (1 tests); the run did not finish: stopped early: stopping after 1 failures, "
        "exit status 1",
        "pmap: ERROR: baseline not saved to base.json: the run did not finish (stopped early: stopping after 1 failures, "
        "exit status 1); its measurements are incomplete",
    ])
    assert not (pytester.path / "base.json").exists()
    monkeypatch.delenv("FAIL")
    refused = pytester.runpytest_subprocess("--pmap-baseline", "r.json")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --pmap-baseline: baseline file 'r.json' is from a run that did not finish: "
                                  "stopped early: stopping after 1 failures, exit status 1; *"
                                  "pass --pmap-allow-incomplete-baseline"])
    allowed = pytester.runpytest_subprocess("--pmap-baseline", "r.json", "--pmap-allow-incomplete-baseline")
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["WARNING: the baseline r.json is from a run that did not finish*",
                                  "1 new (not in the baseline; not gated): test_stops.py::test_b"])
    assert compare_cli("r.json", "r.json", cwd=pytester.path).returncode == 2
    assert compare_cli("r.json", "r.json", "--allow-incomplete-baseline", cwd=pytester.path).returncode == 0


def test_an_xdist_worker_that_crashes_makes_the_results_incomplete(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash="import os, pytest\n@pytest.mark.parametrize('i', range(6))\ndef test_many(i):\n"
                                   "    if i == 3:\n        os._exit(3)\n")
    out = pytester.runpytest_subprocess("-n", "2", "--pmap-json", "r.json")
    assert out.ret == 1
    data = results_of(pytester.path / "r.json")
    assert data["complete"] is False
    assert data["incomplete_reason"].startswith("xdist worker gw")
    assert "went down" in data["incomplete_reason"] and "measurements of its tests were lost" in data["incomplete_reason"]


# -- reports written over the baseline ------------------------------------------------------------------

def test_an_output_that_is_the_baseline_or_another_output_is_refused_and_a_failed_gate_keeps_its_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_leak="import os\nKEEP = []\ndef test_leak():\n    if os.environ.get('LEAK'):\n"
                                  "        KEEP.append(b'x' * (8 << 20))\ndef test_other():\n    pass\n")
    pytester.runpytest_subprocess("--pmap-save-baseline", "base.json").assert_outcomes(passed=2)
    before = (pytester.path / "base.json").read_bytes()
    over = pytester.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-markdown", "./base.json")
    assert over.ret == pytest.ExitCode.USAGE_ERROR
    over.stderr.fnmatch_lines(["ERROR: --pmap-markdown base.json is the same file as --pmap-baseline base.json: writing it "
                               "would replace the baseline this run is gated against; to update a baseline, use "
                               "--pmap-save-baseline"])
    twice = pytester.runpytest_subprocess("--pmap-json", "r.json", "--pmap-bencher", "r.json")
    assert twice.ret == pytest.ExitCode.USAGE_ERROR
    twice.stderr.fnmatch_lines(["ERROR: --pmap-bencher r.json is the same file as --pmap-json r.json: *give each its own file"])
    pytester.runpytest_subprocess("--pmap-json", "head.json").assert_outcomes(passed=2)
    for markdown in ("base.json", "./head.json"):
        out = compare_cli("base.json", "head.json", "--markdown", markdown, cwd=pytester.path)
        assert out.returncode == 2
        assert "writing it would replace that results file" in out.stderr
    assert (pytester.path / "base.json").read_bytes() == before
    monkeypatch.setenv("LEAK", "1")
    ratchet = pytester.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-save-baseline", "base.json")
    assert ratchet.ret == 1
    ratchet.stdout.fnmatch_lines(["1 test regressed*", "pmap: ERROR: baseline not saved to base.json: that is the "
                                  "baseline this run failed against; saving over it would accept what failed"])
    assert (pytester.path / "base.json").read_bytes() == before
    monkeypatch.delenv("LEAK")
    assert pytester.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-save-baseline", "base.json").ret == 0
    assert (pytester.path / "base.json").read_bytes() != before, "a gate that passes updates its baseline"


# -- budgets --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "says"), [
    ({"rss": -1}, r"marker on t\.py::test_x: rss: -1 is negative; a budget is a limit of 0 bytes or more$"),
    ({"peak_rss": "-8MiB"}, r"peak_rss: '-8MiB' is negative"),
    ({"peak_growth": "-1K"}, r"peak_growth: '-1K' is negative; a budget is a limit of 0 bytes or more$"),
    ({"new_anon": -4096}, r"new_anon: -4096 is negative"),
    ({"uss_growth": "-8MiB"}, r"uss_growth: '-8MiB' is negative; a budget is a limit of 0 bytes or more; to require that "
                              r"a test frees memory, assert it in the test: assert pmap\.growth\.uss <= -8 \* MiB$"),
])
def test_a_negative_budget_is_an_error_naming_the_key_and_where_it_came_from(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(BudgetSyntaxError, match=says):
        parse_limits(raw, "marker on t.py::test_x")
    assert parse_limits({"uss_growth": 0, "rss": "0K"}, "marker") == {"uss_growth": 0, "rss": 0}


def test_a_negative_budget_in_pyproject_names_the_file_the_table_and_the_key() -> None:
    pyproject = r"^pyproject\.toml \[tool\.pytest_pmap\] "
    with pytest.raises(BudgetSyntaxError, match=pyproject + r"defaults: rss_growth: '-1M' is negative"):
        BudgetConfig.parse({"defaults": {"rss_growth": "-1M"}}, "pyproject.toml [tool.pytest_pmap]")
    with pytest.raises(BudgetSyntaxError, match=r"budgets\['tests/\*'\]: swap: -1 is negative"):
        BudgetConfig.parse({"budgets": {"tests/*": {"swap": -1}}}, "pyproject.toml [tool.pytest_pmap]")


LEVELS = """
import pytest

pytestmark = pytest.mark.pmap(mapped="1K", rss="1K", uss="1K", anonymous="1K")


@pytest.mark.pmap(pss="1K", uss="100GiB", writeable_private="1K")
class Base:
    pass


@pytest.mark.pmap(rss="100GiB", pss="2K")
class TestLevels(Base):
    @pytest.mark.pmap(mapped="100GiB")
    @pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.pmap(mapped="3K"))])
    def test_levels(self, n):
        pass


@pytest.mark.pmap(uss_growth="1K")
@pytest.mark.pmap(uss_growth="1GiB")
def test_stacked():
    pass


@pytest.mark.pmap(rss="100GiB")
@pytest.mark.pmap(rss="100GiB", pss="100GiB", anonymous="100GiB", mapped="100GiB", uss="100GiB")
def test_the_same_value_twice():
    pass


@pytest.mark.pmap
def test_bare():
    pass
"""


def test_markers_at_each_level_combine_key_by_key_and_two_on_one_level_must_agree(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_levels=LEVELS)
    out = pytester.runpytest_subprocess("-rA")
    out.assert_outcomes(failed=2, passed=1, errors=2)
    text = out.stdout.str()
    first = text.split("TestLevels.test_levels[1] ___")[1].split("\n___")[0]
    assert sorted(line.split(":")[0].strip() for line in first.splitlines() if "(limit from" in line) == [
        "anonymous", "pss", "writeable_private"]
    assert "(limit from marker on module test_levels.py)" in first
    assert "pss: " in first and "> 2K (limit from marker on class test_levels.py::TestLevels)" in first
    assert "> 1K (limit from marker on class Base (a base of test_levels.py::TestLevels))" in first
    second = text.split("TestLevels.test_levels[2] ___")[1].split("\n___")[0]
    assert "> 3K (limit from marker on parameter test_levels.py::TestLevels::test_levels[2])" in second
    out.stdout.fnmatch_lines([
        "marker on test_levels.py::test_stacked: two pmap markers set uss_growth ('1GiB' and '1K'); give each key once "
        "per level*",
        "marker on test_levels.py::test_bare: @pytest.mark.pmap sets no limit, so nothing would be checked*",
    ])
    assert "PASSED test_levels.py::test_the_same_value_twice" in text


def test_a_bad_pmap_top_in_the_ini_file_is_named_as_the_ini_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npmap_top = -3\n")
    out = pytester.runpytest_subprocess("--pmap")
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines(["ERROR: pmap_top = '-3' in tox.ini: give 0 or more tests"])


def test_a_budget_glob_that_is_a_parametrized_node_id_matches_that_test() -> None:
    config = BudgetConfig.parse({"budgets": {"tests/test_load.py::test_load[big]": {"uss_growth": "64MiB"},
                                             "tests/test_load.py::test_load[small-?]": {"rss": "1MiB"}}},
                                "pyproject.toml [tool.pytest_pmap]")
    assert config.for_test("tests/test_load.py::test_load[big]").limits == {"uss_growth": 64 * MiB}
    assert config.for_test("tests/test_load.py::test_load[small-1]").limits == {"rss": MiB}
    assert not config.for_test("tests/test_load.py::test_load[b]"), "brackets are not a set of characters"


def test_a_gate_that_cannot_measure_stops_the_run_instead_of_passing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a procfs that is not one, `--pmap` can only say it did nothing; a gate or a results file
    asked for would silently pass every run, so it is a usage error naming the reason."""
    pytester.makepyfile("def test_a(): pass")
    env_procfs = str(pytester.path)
    monkeypatch.setenv("PYTEST_PMAP_PROCFS", env_procfs)
    result = pytester.runpytest_inprocess("--pmap-json", "r.json", "--pmap-save-baseline", "b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --pmap-json and --pmap-save-baseline: memory cannot be measured here: "
                                 f"PYTEST_PMAP_PROCFS={env_procfs} is not a procfs*"])
    assert not (pytester.path / "r.json").exists() and not (pytester.path / "b.json").exists()


def test_an_xfail_test_that_breaks_its_budget_is_xfailed_not_failed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        KEEP = []

        @pytest.mark.xfail(reason="known to grow")
        @pytest.mark.pmap(uss_growth="1MiB")
        def test_grows():
            KEEP.append(b"x" * (16 << 20))
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["XFAIL *test_grows*known to grow*"])
