"""The regression gate without pytest in the way: tolerances, metrics, comparisons, results files
and the report formats, each checked against its published shape."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import jsonschema
import pytest

from pytest_pmap import KiB, MiB, PmapError
from pytest_pmap._engine.files import write_atomic
from pytest_pmap._gate.compare import Comparison, Row, Tolerance, compare, parse_metric
from pytest_pmap._gate.environment import Environment, current_environment
from pytest_pmap._gate.reports import bencher, benchmark_action, markdown, write_report
from pytest_pmap._gate.results import ResultsFileError, RunResults
from pytest_pmap._measure.result import GATE_METRICS, MemoryResult, NewRegion
from pytest_pmap.errors import BudgetSyntaxError


def result(nodeid: str, uss: Optional[int], *, peak: Optional[int] = None, huge: Optional[int] = 0,
           regions: tuple[NewRegion, ...] = (), budget: tuple[str, ...] = ()) -> MemoryResult:
    """A result whose test kept everything it allocated (peak = growth) unless `peak` says otherwise."""
    return MemoryResult(nodeid, {"uss": uss, "rss": uss}, peak if peak is not None else uss, huge, regions, budget,
                        "\n".join(budget))


HERE = Environment(machine="x86_64", python="CPython 3.11.7")


def run(*results: MemoryResult, env: Environment = HERE) -> RunResults:
    return RunResults(tuple(results), env)


# -- tolerances and metrics ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "relative", "absolute"), [
    ("2%,512KiB", 0.02, 512 * KiB),
    ("512KiB,2%", 0.02, 512 * KiB),
    ("5%", 0.05, 512 * KiB),          # a part not given keeps its default
    ("1MiB", 0.02, MiB),
    ("0%,0", 0.0, 0),
    (" 10 % , 2M ", 0.10, 2 * MiB),
    ("1.5%", 0.015, 512 * KiB),
])
def test_tolerances_that_parse(text: str, relative: float, absolute: int) -> None:
    tol = Tolerance.parse(text, "--pmap-tolerance")
    assert tol.relative == pytest.approx(relative)
    assert tol.absolute == absolute


@pytest.mark.parametrize(("text", "says"), [
    ("", "is not a tolerance"),
    ("2%,", "is not a tolerance"),
    ("2%,1M,3%", "is not a tolerance"),
    ("2%,3%", "relative tolerance twice"),
    ("1M,2M", "absolute tolerance twice"),
    ("abc%", "is not a percentage"),
    ("-2%", "is not a percentage"),
    ("2000%", "is not a percentage"),
    ("5 parsecs", "'5 parsecs' is neither a percentage"),
    ("-1MiB", "is negative"),
])
def test_tolerances_that_do_not_parse_name_the_source(text: str, says: str) -> None:
    with pytest.raises(BudgetSyntaxError, match=says) as exc:
        Tolerance.parse(text, "pmap_tolerance in tox.ini")
    assert str(exc.value).startswith("pmap_tolerance in tox.ini: ")


def test_the_allowance_is_the_larger_of_the_two_parts() -> None:
    tol = Tolerance(0.10, 512 * KiB)
    assert tol.allowed(0) == 512 * KiB
    assert tol.allowed(100 * MiB) == 10 * MiB
    assert tol.allowed(-100 * MiB) == 10 * MiB
    assert str(tol) == "max(10%, 512 KiB)"


def test_metrics_are_checked_and_a_bare_metric_name_gets_a_hint() -> None:
    assert parse_metric("USS-growth", "--pmap-metric") == "uss_growth"
    assert parse_metric("peak_growth", "x") == "peak_growth"
    with pytest.raises(BudgetSyntaxError, match=r"--pmap-metric: unknown metric 'uss' \(did you mean 'uss_growth'\?\)"):
        parse_metric("uss", "--pmap-metric")
    with pytest.raises(BudgetSyntaxError, match="known metrics: mapped_growth, "):
        parse_metric("bogus", "--pmap-metric")


# -- comparisons --------------------------------------------------------------------------------------

def test_a_comparison_sorts_every_test_into_one_status() -> None:
    base = run(result("t::same", 100 * KiB), result("t::grew", 0), result("t::shrank", 4 * MiB),
               result("t::gone", 0), result("t::lost_metric", 0))
    head = run(result("t::same", 400 * KiB), result("t::grew", MiB), result("t::shrank", 0),
               result("t::new", 9 * MiB), result("t::lost_metric", None))
    c = compare(base, head)
    status = {r.nodeid: r.status for r in c.rows}
    assert status == {"t::same": "ok", "t::grew": "regressed", "t::shrank": "improved", "t::new": "new",
                      "t::gone": "gone", "t::lost_metric": "unmeasured"}
    (grew,) = c.regressions
    assert (grew.base, grew.head, grew.delta, grew.allowed) == (0, MiB, MiB, 512 * KiB)
    assert not c.passed
    assert c.headline() == "1 test regressed in uss_growth against baseline (tolerance max(2%, 512 KiB))"


def test_new_and_gone_tests_never_fail_the_gate() -> None:
    c = compare(run(result("t::old", 0), result("t::kept", 0)), run(result("t::new", 100 * MiB), result("t::kept", 0)))
    assert c.passed
    assert [line for line in c.table() if "new" in line or "gone" in line] == [
        "1 new (not in the baseline; not gated): t::new",
        "1 gone (in the baseline, not in this run): t::old",
    ]


def test_exactly_the_tolerance_passes_and_one_byte_more_fails() -> None:
    base = run(result("t::a", 0))
    assert compare(base, run(result("t::a", 512 * KiB))).passed
    assert not compare(base, run(result("t::a", 512 * KiB + 1))).passed


def test_huge_pages_widen_the_allowance_to_one_huge_page() -> None:
    base = run(result("t::a", 0, huge=2 * MiB))
    (row,) = compare(base, run(result("t::a", 2 * MiB))).rows
    assert (row.status, row.allowed, row.widened) == ("ok", 2 * MiB, "huge pages")
    (row,) = compare(run(result("t::a", 0)), run(result("t::a", 2 * MiB))).rows
    assert (row.status, row.widened) == ("regressed", "")


def test_a_test_that_allocated_in_the_baseline_may_move_by_one_allocator_step() -> None:
    allocating = run(result("t::a", 0, peak=6 * MiB))
    (row,) = compare(allocating, run(result("t::a", MiB))).rows
    assert (row.status, row.allowed, row.widened) == ("ok", MiB + 512 * KiB, "allocator reserve")
    (row,) = compare(allocating, run(result("t::a", MiB + 512 * KiB + 1))).rows
    assert row.status == "regressed"


def test_only_the_baseline_decides_so_a_quiet_test_that_starts_leaking_is_caught() -> None:
    quiet = run(result("t::a", 0, peak=100 * KiB))
    (row,) = compare(quiet, run(result("t::a", MiB, peak=6 * MiB))).rows
    assert (row.status, row.widened) == ("regressed", "")


def test_an_unknown_peak_in_the_baseline_widens_rather_than_guess() -> None:
    unknown = run(MemoryResult("t::a", {"uss": 0, "rss": 0}, None))
    (row,) = compare(unknown, run(result("t::a", MiB))).rows
    assert (row.status, row.widened) == ("ok", "allocator reserve")


def test_a_regression_lists_the_new_mappings_it_made() -> None:
    region = NewRegion(0x7F0000000000, MiB, "rw---", "[ anon ]")
    c = compare(run(result("t::a", 0)), run(result("t::a", MiB, regions=(region,))))
    assert c.table()[1:4] == [
        "  baseline        now     change    allowed   used  test",
        "       +0K     +1024K     +1024K       512K   200%  t::a",
        "            new: 00007f0000000000    +1024 rw--- [ anon ]",
    ]


def test_a_baseline_from_another_python_or_kernel_warns() -> None:
    base = run(result("t::a", 0), env=Environment(machine="x86_64", python="CPython 3.11.7", kernel="6.1", host="a"))
    head = run(result("t::a", 0), env=Environment(machine="x86_64", python="CPython 3.12.1", kernel="6.8", host="b"))
    (warning,) = compare(base, head, baseline="baseline base.json").warnings
    assert warning == ("the baseline base.json was measured with Python CPython 3.11.7 -> CPython 3.12.1, "
                       "kernel 6.1 -> 6.8: expect differences that are not regressions")
    assert compare(base, base).warnings == ()


def test_this_machine_is_described() -> None:
    env = current_environment()
    assert env.machine and env.kernel and env.python.split()[0] in ("CPython", "PyPy")
    assert env.page_size == os.sysconf("SC_PAGE_SIZE")
    assert env.thp in ("always", "madvise", "never", "")


# -- results files ------------------------------------------------------------------------------------

def test_a_results_file_round_trips(tmp_path: Path) -> None:
    region = NewRegion(0x1000, 4096, "rw---", "odd name \udcff")
    original = RunResults((result("t::a", MiB, regions=(region,), budget=("uss 9M > 8M",)),
                           MemoryResult("t::b", {"uss": None})), current_environment())
    original.save(tmp_path / "r.json")
    again = RunResults.load(tmp_path / "r.json")
    assert again == original


@pytest.mark.parametrize(("content", "says"), [
    (None, "baseline file '{path}' does not exist"),
    (b"", "baseline file '{path}' is empty"),
    (b"{not json", "baseline file '{path}' is not valid JSON"),
    (b'{"format": "pytest-pmap-snapshot", "version": 1}', "is not a pytest-pmap results file"),
    (b'[1, 2]', "is not a pytest-pmap results file"),
    (b'{"format": "pytest-pmap-results", "version": 99, "results": []}', "version 99 results file.*upgrade pytest-pmap"),
    (b'{"format": "pytest-pmap-results", "version": 1}', "is corrupt: KeyError"),
    (b'{"format": "pytest-pmap-results", "version": 1, "results": [{"nodeid": "a", "growth": {"uss": "x"}}]}',
     "is corrupt: TypeError: 'x' is not a number of bytes"),
])
def test_a_bad_results_file_is_a_clear_error_and_is_left_alone(tmp_path: Path, content: Optional[bytes], says: str) -> None:
    path = tmp_path / "base.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ResultsFileError, match=says.format(path=path)):
        RunResults.load(path, "baseline file")
    assert (path.read_bytes() if content is not None else None) == content


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "base.json"
    path.write_bytes(b"the old baseline")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(PmapError, match=r"cannot write .*base.json.*No space left on device"):
        write_atomic(path, b"x" * 100_000)
    assert path.read_bytes() == b"the old baseline"
    assert os.listdir(tmp_path) == ["base.json"]


def test_the_step_summary_is_appended_to_and_other_files_are_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, other = tmp_path / "summary.md", tmp_path / "other.md"
    summary.write_text("# from an earlier command\n")
    other.write_text("old\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert write_report(summary, b"## ours\n") == "appended to"
    assert write_report(other, b"new\n") == "wrote"
    assert summary.read_text() == "# from an earlier command\n## ours\n"
    assert other.read_text() == "new\n"


# -- report formats -----------------------------------------------------------------------------------

#: The Bencher Metric Format schema as published at https://bencher.dev/docs/reference/bencher-metric-format
BMF_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "patternProperties": {".+": {
        "type": "object",
        "patternProperties": {".+": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "lower_value": {"type": "number"},
                           "upper_value": {"type": "number"}},
            "required": ["value"],
        }},
    }},
}

#: github-action-benchmark's BenchmarkResult (src/extract.ts), the entries of a custom* tool's file.
BENCHMARK_ACTION_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "value": {"type": "number"}, "unit": {"type": "string"},
                       "range": {"type": "string"}, "extra": {"type": "string"}},
        "required": ["name", "value", "unit"],
        "additionalProperties": False,
    },
}


def test_bencher_metric_format() -> None:
    data = bencher(run(result("t::a", MiB), MemoryResult("t::none", {"uss": None})))
    jsonschema.validate(json.loads(json.dumps(data)), BMF_SCHEMA)
    assert data["t::a"]["uss-growth"] == {"value": float(MiB)}
    assert set(data["t::a"]) == {"uss-growth", "rss-growth", "peak-growth"}
    assert "t::none" not in data  # nothing measured: no benchmark rather than a zero
    assert len(GATE_METRICS) == 11  # every metric's growth, the peak, and the heap's in-use bytes


def test_github_action_benchmark_format() -> None:
    data = benchmark_action(run(result("t::a", MiB), MemoryResult("t::none", {"uss": None})), "uss_growth")
    jsonschema.validate(json.loads(json.dumps(data)), BENCHMARK_ACTION_SCHEMA)
    assert [(e["name"], e["value"], e["unit"]) for e in data] == [("t::a (uss_growth)", MiB, "bytes")]


def test_markdown_puts_regressions_first_then_budgets_then_top_growers() -> None:
    region = NewRegion(0x7F0000000000, MiB, "rw---", "[ anon ]")
    base = run(result("t::leaky[a|b]", 0), result("t::fine", 0))
    head = run(result("t::leaky[a|b]", MiB, regions=(region,)), result("t::fine", 100 * KiB),
               result("t::budget", 0, budget=("uss_growth 9216K > 8192K (marker)",)))
    text = markdown(head, compare(base, head, baseline="baseline base.json"))
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["## pytest-pmap: memory per test, against baseline base.json", "### Regressions",
                        "### Budgets exceeded", "### Top 2 by uss_growth"]
    assert ":x: **1 test regressed in uss_growth against baseline base.json" in text
    assert "| <code>t::leaky[a&#124;b]</code> | +0K | +1024K | +1024K | 512K | 200% |" in text
    assert "<summary><code>t::leaky[a&#124;b]</code>: 1 new mapping</summary>" in text
    assert "00007f0000000000    +1024 rw--- [ anon ]" in text
    assert "<summary><code>t::budget</code>: uss_growth 9216K &gt; 8192K (marker)</summary>" in text
    assert text.count("<details>") == text.count("</details>") == 2
    assert "1 new." in text


def test_markdown_without_a_baseline_and_a_fence_inside_a_failure() -> None:
    head = run(MemoryResult("t::a", {"uss": 0}, 0, 0, (), ("x",), "```\ninside\n```"))
    text = markdown(head)
    assert "regressed" not in text
    assert "````\n```\ninside\n```\n````" in text


def test_markdown_stays_within_a_step_summary_for_a_huge_suite() -> None:
    many = [result(f"t::test_{i}", MiB, budget=("uss_growth 9216K > 8192K (marker)",)) for i in range(5000)]
    head = run(*many)
    text = markdown(head, compare(run(*[result(r.nodeid, 0) for r in many]), head))
    assert len(text.encode()) < 1024 * 1024  # GitHub's limit for one step's summary
    assert "| ... and 4800 more | | | | |" in text
    assert "5000 tests broke their budgets in all." in text


def test_markdown_shows_tolerance_used_evidence_accepted_noise_and_improvements_by_name() -> None:
    rows = (
        Row("t::leak", "regressed", 0, 2 * MiB, 512 * KiB, evidence="confirmed 3/3: uss_growth +2048K +2048K +2048K"),
        Row("t::cache", "accepted", 0, MiB, 512 * KiB, reason="the cache keeps 1 MiB on purpose"),
        Row("t::flaky", "noise", 0, MiB, 512 * KiB, evidence="not confirmed: grew again in 0 of 3 repeats"),
        Row("t::better", "improved", 4 * MiB, 0, 512 * KiB),
    )
    comparison = Comparison("uss_growth", Tolerance(), rows, baseline="baseline base.json",
                            update="pytest --pmap-save-baseline base.json")
    text = markdown(run(result("t::leak", 2 * MiB)), comparison)
    assert ("| <code>t::leak</code> | +0K | +2048K | +2048K | 512K | 400% "
            "| confirmed 3/3: uss_growth +2048K +2048K +2048K |") in text
    assert "fix it, or accept: <code>&quot;t::leak&quot; = &quot;why it grew&quot;</code>" in text
    assert "| <code>t::cache</code> | +1024K | 200% | the cache keeps 1 MiB on purpose |" in text
    assert "| <code>t::flaky</code> | +1024K | noise | not confirmed: grew again in 0 of 3 repeats |" in text
    assert "1 improved beyond tolerance: t::better (-4096K); update the baseline to keep the gain" in text
    assert "pytest --pmap-save-baseline base.json" in text
    table = comparison.table()
    assert "accepted: t::cache +1024K (200% of its allowance 512K): the cache keeps 1 MiB on purpose" in table
    assert any(line.startswith("1 not confirmed, noise") and "t::flaky" in line for line in table)
