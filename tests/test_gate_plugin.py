"""The regression gate as CI runs it (pytester): saving a baseline, gating against it, the report
files, xdist, JUnit XML, and the `pytest-pmap compare` command.

Every run that measures is a pytest process of its own; the baseline that the gating tests start
from is saved once, by a run of its own (`saved_baseline`). Runs that only print help or stop on a
bad setting measure nothing: they run in this process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = """
import os
KEEP = []

def test_steady():
    assert sum(range(1000)) > 0

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


@pytest.fixture(scope="module")
def saved_baseline(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The suite's baseline, saved once by a pytest process of its own (as `runpytest_subprocess`
    would start it) and shared: each test that gates against a baseline starts from a copy."""
    folder = tmp_path_factory.mktemp("saved-baseline")
    (folder / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k not in ("LEAK_MIB", "TOX_ENV_DIR")}
    env.update(HOME=str(folder), PY_COLORS="0", PYTEST_ADDOPTS="-p no:hypothesispytest")  # as our pytester
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-mpytest", f"--basetemp={folder / 'basetemp'}", "--pmap-save-baseline",
                           "base.json"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(),
                              time.monotonic() - start)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pmap: wrote baseline base.json (3 tests)"])
    return (folder / "base.json").read_bytes()


def copy_baseline(pytester: pytest.Pytester, saved: bytes) -> Path:
    """The shared baseline, as base.json of this test's suite."""
    path = pytester.path / "base.json"
    path.write_bytes(saved)
    return path


def test_help_lists_the_gate_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines([
        "*--pmap-json=PATH*",
        "*--pmap-markdown=PATH*",
        "*--pmap-save-baseline=PATH*",
        "*--pmap-baseline=PATH*",
        "*--pmap-tolerance=TOLERANCE*",
        "*--pmap-metric=METRIC*",
        "*--pmap-bencher=PATH*",
        "*--pmap-benchmark-action=PATH*",
        "*pmap_tolerance (string):*",
        "*pmap_metric (string):*",
    ])


def test_a_saved_baseline_holds_every_test(saved_baseline: bytes) -> None:
    data = json.loads(saved_baseline)
    assert data["format"] == "pytest-pmap-results" and data["version"] == 1
    assert [r["nodeid"] for r in data["results"]] == [
        "test_suite.py::test_steady", "test_suite.py::test_leaky", "test_suite.py::test_other"]
    assert {"machine", "python", "kernel", "page_size", "thp"} <= set(data["environment"])
    assert all(isinstance(r["growth"]["uss"], int) for r in data["results"])


def test_a_steady_run_passes_the_gate(suite: pytest.Pytester, saved_baseline: bytes) -> None:
    copy_baseline(suite, saved_baseline)
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*pmap: the baseline gate*", "no test regressed in uss_growth against baseline base.json*",
                                 "3 within tolerance, 0 improved beyond it"])


def test_a_leak_fails_the_run_and_names_the_test(
    suite: pytest.Pytester, saved_baseline: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_baseline(suite, saved_baseline)
    before = (suite.path / "base.json").read_bytes()
    monkeypatch.setenv("LEAK_MIB", "4")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    result.assert_outcomes(passed=3)
    assert result.ret == 1
    result.stdout.re_match_lines([
        r"1 test regressed in uss_growth against baseline base\.json \(tolerance max\(2%, 512 KiB\)\)",
        r" +baseline +now +change +allowed +used +test",
        r" +[+-]\d+K +\+4\d\d\dK +\+4\d\d\dK +512K +\d+% +test_suite\.py::test_leaky",
        r" +new: [0-9a-f]{16} +\+4\d\d\d rw--- \[ anon \]",
    ])
    assert (suite.path / "base.json").read_bytes() == before


def test_a_wider_tolerance_or_another_metric_lets_it_pass(
    suite: pytest.Pytester, saved_baseline: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_baseline(suite, saved_baseline)
    monkeypatch.setenv("LEAK_MIB", "4")
    assert suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-tolerance", "16MiB").ret == 0
    suite.makeini("[pytest]\npmap_tolerance = 2%,16MiB\npmap_metric = swap_growth\n")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["no test regressed in swap_growth against baseline base.json (tolerance max(2%, 16 MiB))"])


def test_new_and_gone_tests_are_reported_and_do_not_fail(suite: pytest.Pytester, saved_baseline: bytes) -> None:
    copy_baseline(suite, saved_baseline)
    suite.makepyfile(test_suite=SUITE.replace("def test_other", "def test_renamed"))
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "1 new (not in the baseline; not gated): test_suite.py::test_renamed",
        "1 gone (in the baseline, not in this run): test_suite.py::test_other",
    ])


@pytest.mark.parametrize(("args", "ini", "error"), [
    (["--pmap-tolerance", "5 parsecs"], "",
     "ERROR: --pmap-tolerance: '5 parsecs' is not a tolerance: '5 parsecs' is neither a percentage (2%) nor a size (512KiB)"),
    ([], "pmap_tolerance = lots\n", "ERROR: pmap_tolerance in tox.ini: 'lots' is not a tolerance*"),
    (["--pmap-metric", "uss"], "", "ERROR: --pmap-metric: unknown metric 'uss' (did you mean 'uss_growth'?)*"),
    ([], "pmap_metric = nope\n", "ERROR: pmap_metric in tox.ini: unknown metric 'nope'*"),
    (["--pmap-json", "no/such/folder/r.json"], "",
     "ERROR: --pmap-json: cannot write 'no/such/folder/r.json': folder 'no/such/folder' does not exist*"),
    (["--pmap-markdown", "."], "", "ERROR: --pmap-markdown: cannot write '.': it is a folder; give a file name"),
])
def test_bad_settings_are_usage_errors_naming_the_source(suite: pytest.Pytester, args: list[str], ini: str, error: str) -> None:
    if ini:
        suite.path.joinpath("tox.ini").write_text("[pytest]\n" + ini)
    result = suite.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([error])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(("content", "error"), [
    (None, "ERROR: --pmap-baseline: baseline file 'base.json' does not exist (save one with --pmap-save-baseline base.json)"),
    (b"{\"results\": [", "ERROR: --pmap-baseline: baseline file 'base.json' is not valid JSON*"),
    (b"{\"format\": \"something-else\"}", "ERROR: --pmap-baseline: baseline file 'base.json' is not a pytest-pmap results file*"),
])
def test_a_missing_or_corrupt_baseline_stops_the_run_and_is_left_alone(
    suite: pytest.Pytester, content: bytes | None, error: str
) -> None:
    path = suite.path / "base.json"
    if content is not None:
        path.write_bytes(content)
    result = suite.runpytest_inprocess("--pmap-baseline", "base.json", "--pmap-save-baseline", "base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([error])
    assert (path.read_bytes() if content is not None else None) == content
    assert "passed" not in result.stdout.str()


def test_an_interrupted_run_does_not_overwrite_the_baseline(suite: pytest.Pytester, saved_baseline: bytes) -> None:
    path = copy_baseline(suite, saved_baseline)
    before = path.read_bytes()
    suite.makepyfile(test_stop="def test_stop():\n    raise KeyboardInterrupt\n")
    result = suite.runpytest_subprocess("--pmap-save-baseline", "base.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["pmap: ERROR: baseline not saved to base.json: the run did not finish (interrupted: KeyboardInterrupt, exit status 2)*"])
    assert path.read_bytes() == before


def test_under_xdist_the_controller_writes_one_file_with_every_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_more="import pytest\n@pytest.mark.parametrize('i', range(20))\ndef test_many(i):\n    pass\n")
    result = suite.runpytest_subprocess("-n", "2", "--pmap-json", "r.json", "--pmap-save-baseline", "base.json")
    result.assert_outcomes(passed=23)
    result.stdout.fnmatch_lines(["pmap: wrote JSON results r.json (23 tests)", "pmap: wrote baseline base.json (23 tests)"])
    assert sorted(p.name for p in suite.path.glob("*.json")) == ["base.json", "r.json"]
    data = json.loads((suite.path / "r.json").read_text())
    assert len({r["nodeid"] for r in data["results"]}) == 23
    result = suite.runpytest_subprocess("-n", "2", "--pmap-baseline", "base.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["no test regressed*", "23 within tolerance*"])


def test_every_report_is_written_and_the_markdown_leads_with_the_regression(
    suite: pytest.Pytester, saved_baseline: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_baseline(suite, saved_baseline)
    monkeypatch.setenv("LEAK_MIB", "4")
    result = suite.runpytest_subprocess(
        "--pmap-baseline", "base.json", "--pmap-json", "r.json", "--pmap-markdown", "r.md",
        "--pmap-bencher", "bmf.json", "--pmap-benchmark-action", "gab.json",
    )
    assert result.ret == 1
    md = (suite.path / "r.md").read_text()
    assert md.index("### Regressions") < md.index("### Top")
    assert "<summary><code>test_suite.py::test_leaky</code>: 1 new mapping</summary>" in md
    bmf = json.loads((suite.path / "bmf.json").read_text())
    assert bmf["test_suite.py::test_leaky"]["uss-growth"]["value"] >= 4 << 20
    gab = json.loads((suite.path / "gab.json").read_text())
    assert {e["name"] for e in gab} == {f"test_suite.py::test_{n} (uss_growth)" for n in ("steady", "leaky", "other")}


def test_markdown_to_the_github_step_summary_appends(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = suite.path / "step_summary.md"
    summary.write_text("Earlier step output\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = suite.runpytest_subprocess("--pmap-markdown", str(summary))
    result.stdout.fnmatch_lines([f"pmap: appended to Markdown summary {summary} (3 tests)"])
    text = summary.read_text()
    assert text.startswith("Earlier step output\n## pytest-pmap: memory per test\n")


def test_measurements_go_into_junit_xml_as_properties(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAK_MIB", "2")
    suite.runpytest_subprocess("--pmap", "--junitxml", "junit.xml").assert_outcomes(passed=3)
    root = ET.parse(suite.path / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_leaky")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert int(props["pmap_uss_growth"] or 0) >= 2 << 20
    assert {"pmap_rss_growth", "pmap_peak_growth", "pmap_new_mappings"} <= set(props)


def compare_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_pmap", "compare", *args], cwd=cwd, capture_output=True, text=True)


def test_the_compare_command_gates_two_results_files(
    suite: pytest.Pytester, saved_baseline: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_baseline(suite, saved_baseline)
    suite.runpytest_subprocess("--pmap-json", "same.json").assert_outcomes(passed=3)
    monkeypatch.setenv("LEAK_MIB", "4")
    suite.runpytest_subprocess("--pmap-json", "leak.json").assert_outcomes(passed=3)

    same = compare_cli("base.json", "same.json", cwd=suite.path)
    assert (same.returncode, same.stderr) == (0, "")
    assert same.stdout.startswith("no test regressed in uss_growth against baseline base.json")

    leak = compare_cli("base.json", "leak.json", "--markdown", "pr.md", cwd=suite.path)
    assert leak.returncode == 1
    assert "test_suite.py::test_leaky" in leak.stdout.splitlines()[2]
    assert "### Regressions" in (suite.path / "pr.md").read_text()

    assert compare_cli("base.json", "leak.json", "--tolerance", "64MiB", cwd=suite.path).returncode == 0
    assert compare_cli("base.json", "leak.json", "--metric", "swap_growth", cwd=suite.path).returncode == 0


@pytest.mark.parametrize(("args", "error"), [
    (["base.json", "missing.json"], "pytest-pmap compare: results file 'missing.json' does not exist"),
    (["base.json", "base.json", "--tolerance", "x"], "pytest-pmap compare: --tolerance: 'x' is not a tolerance"),
    (["base.json", "base.json", "--metric", "rss"],
     "pytest-pmap compare: --metric: unknown metric 'rss' (did you mean 'rss_growth'?)"),
    (["base.json"], "pytest-pmap compare: error: the following arguments are required: HEAD"),
])
def test_the_compare_command_rejects_bad_input_with_status_2(
    suite: pytest.Pytester, saved_baseline: bytes, args: list[str], error: str
) -> None:
    copy_baseline(suite, saved_baseline)
    out = compare_cli(*args, cwd=suite.path)
    assert out.returncode == 2
    assert error in out.stderr
    assert "Traceback" not in out.stderr
