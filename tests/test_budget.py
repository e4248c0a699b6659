"""Budgets: limits parsed from markers and `[tool.pytest_pmap]`, merged, and checked against a `Probe`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_probe import Child, fake_proc

from pytest_pmap import BudgetSyntaxError, GiB, KiB, MiB, Size
from pytest_pmap._measure.budget import KEYS, Budget, BudgetConfig, Violation, check, parse_limits, report_text
from pytest_pmap._measure.probe import Probe

MARKER = "marker on tests/test_x.py::test_y"
PYPROJECT = "pyproject.toml [tool.pytest_pmap]"
ALL_KEYS = (
    "mapped, writeable_private, shared, rss, pss, uss, private_dirty, anonymous, swap, mapped_growth, "
    "writeable_private_growth, shared_growth, rss_growth, pss_growth, uss_growth, private_dirty_growth, "
    "anonymous_growth, swap_growth, peak_rss, peak_growth, new_anon, new_mapping"
)


@pytest.fixture
def child() -> Iterator[Child]:
    c = Child()
    yield c
    c.stop()


# -- parse_limits --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ({}, {}),
    ({"uss": "300MiB"}, {"uss": 300 * MiB}),
    ({"uss_growth": "8M", "peak_rss": 1024, "new_anon": "1.5K"}, {"uss_growth": 8 * MiB, "peak_rss": 1024, "new_anon": 1536}),
    ({"rss": "2 GB", "swap_growth": "0", "new_mapping": "4kib"}, {"rss": 2 * GiB, "swap_growth": 0, "new_mapping": 4 * KiB}),
])
def test_parse_limits_reads_keys_and_sizes(raw: dict[str, Any], expected: dict[str, int]) -> None:
    limits = parse_limits(raw, MARKER)
    assert limits == expected and all(type(v) is Size for v in limits.values())


def test_every_documented_key_is_accepted() -> None:
    keys = ALL_KEYS.split(", ")
    assert list(KEYS) == keys
    assert list(parse_limits(dict.fromkeys(keys, "1K"), MARKER)) == keys


@pytest.mark.parametrize(("raw", "message"), [
    ({"uss_grwoth": "4MiB"}, f"unknown budget key 'uss_grwoth' (did you mean 'uss_growth'?); known keys: {ALL_KEYS}"),
    ({"peak": "4MiB"}, f"unknown budget key 'peak' (did you mean 'peak_rss'?); known keys: {ALL_KEYS}"),
    ({"vms": "4MiB"}, f"unknown budget key 'vms'; known keys: {ALL_KEYS}"),
    ({"uss": "1M", "USS": "1M"}, f"unknown budget key 'USS'; known keys: {ALL_KEYS}"),
    ({"rss": "lots"}, "rss: 'lots' is not a size: write a number with an optional unit B, K, M, G, T"),
    ({"rss": "8 parsecs"}, "rss: '8 parsecs' is not a size"),
    ({"rss": "1.1K"}, "rss: '1.1K' is not a whole number of bytes"),
    ({"uss_growth": True}, "uss_growth: True is not a size: give a number of bytes or a string such as '8MiB'"),
    ({"uss_growth": 1.5}, "uss_growth: 1.5 is not a size"),
    ({"new_anon": None}, "new_anon: None is not a size"),
    ({"uss": "1M", "peak_rss": ["1M"]}, "peak_rss: ['1M'] is not a size"),
])
def test_parse_limits_errors_name_the_source_and_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(BudgetSyntaxError, match="^" + re.escape(f"{MARKER}: {message}")):
        parse_limits(raw, MARKER)


# -- Budget, BudgetConfig ----------------------------------------------------------------------------------

def test_merged_puts_new_limits_on_top_and_remembers_where_each_came_from() -> None:
    empty = Budget()
    assert not empty and empty.limits == {} and empty.sources == {}
    defaults = empty.merged({"uss": Size("1MiB"), "rss": Size("2MiB")}, "defaults")
    marked = defaults.merged({"uss": Size("3MiB")}, "marker")
    assert marked and marked.limits == {"uss": 3 * MiB, "rss": 2 * MiB}
    assert marked.sources == {"uss": "marker", "rss": "defaults"}
    assert defaults.limits == {"uss": 1 * MiB, "rss": 2 * MiB} and defaults.sources == {"uss": "defaults", "rss": "defaults"}
    assert empty.limits == {} and empty.sources == {}


CONFIG = {
    "defaults": {"uss_growth": "8MiB", "peak_growth": "64MiB"},
    "budgets": {
        "tests/test_a.py::*": {"uss_growth": "16MiB"},
        "tests/test_a.py::test_big*": {"uss_growth": "64MiB", "new_anon": "1GiB"},
        "*::test_big_one": {"peak_growth": "1GiB"},
    },
}


@pytest.mark.parametrize(("nodeid", "limits", "sources"), [
    ("tests/test_b.py::test_x", {"uss_growth": 8 * MiB, "peak_growth": 64 * MiB},
     {"uss_growth": "defaults", "peak_growth": "defaults"}),
    ("tests/test_a.py::test_small", {"uss_growth": 16 * MiB, "peak_growth": 64 * MiB},
     {"uss_growth": "budgets['tests/test_a.py::*']", "peak_growth": "defaults"}),
    ("tests/test_a.py::test_big_one", {"uss_growth": 64 * MiB, "peak_growth": 1 * GiB, "new_anon": 1 * GiB},
     {"uss_growth": "budgets['tests/test_a.py::test_big*']", "peak_growth": "budgets['*::test_big_one']",
      "new_anon": "budgets['tests/test_a.py::test_big*']"}),
    ("TESTS/test_a.py::test_small", {"uss_growth": 8 * MiB, "peak_growth": 64 * MiB},  # globs are case-sensitive
     {"uss_growth": "defaults", "peak_growth": "defaults"}),
])
def test_for_test_applies_the_defaults_then_every_matching_glob(nodeid: str, limits: dict[str, int],
                                                                sources: dict[str, str]) -> None:
    budget = BudgetConfig.parse(CONFIG, PYPROJECT).for_test(nodeid)
    assert budget.limits == limits
    assert budget.sources == {key: f"{PYPROJECT} {where}" for key, where in sources.items()}


def test_later_globs_win_over_earlier_ones_in_file_order() -> None:
    config = BudgetConfig.parse({"budgets": {"t.py::test_big*": {"uss": "64MiB"}, "t.py::*": {"uss": "16MiB"}}}, PYPROJECT)
    assert [pattern for pattern, _, _ in config.globs] == ["t.py::test_big*", "t.py::*"]
    assert config.for_test("t.py::test_big_one").limits == {"uss": 16 * MiB}


def test_an_empty_config_gives_every_test_an_empty_budget() -> None:
    config = BudgetConfig.parse({}, PYPROJECT)
    assert config == BudgetConfig() and not config.for_test("t.py::test_x")


@pytest.mark.parametrize(("config", "message"), [
    ({"budget": {}}, ": unknown key 'budget'; expected accept and budgets and defaults"),
    ({"defaults": 5}, " defaults must be a table of budget keys, not 5"),
    ({"defaults": ["uss"]}, " defaults must be a table of budget keys, not ['uss']"),
    ({"budgets": []}, " budgets must be a table of node-id globs, not []"),
    ({"budgets": {"t::*": "8MiB"}}, " budgets['t::*'] must be a table of budget keys, not '8MiB'"),
    ({"budgets": {"t::*": {"usss": 1}}}, f" budgets['t::*']: unknown budget key 'usss'; known keys: {ALL_KEYS}"),
    ({"defaults": {"rss": "lots"}}, " defaults: rss: 'lots' is not a size"),
])
def test_bad_config_shapes_are_errors_naming_the_place(config: dict[str, Any], message: str) -> None:
    with pytest.raises(BudgetSyntaxError, match="^" + re.escape(PYPROJECT + message)):
        BudgetConfig.parse(config, PYPROJECT)


# -- check, Violation, report_text -------------------------------------------------------------------------

LIMITS = {"uss_growth": Size("16MiB"), "rss_growth": Size("1GiB"), "new_anon": Size("8MiB"), "new_mapping": Size("1GiB"),
          "peak_growth": Size("1GiB"), "mapped": Size("1TiB")}


def test_check_finds_the_limits_a_child_broke_and_only_those(child: Child) -> None:
    probe = Probe(child.pid)
    budget = Budget().merged(LIMITS, "marker")
    assert check(budget, probe) == ([], [])
    child.ask("alloc 32")
    violations, unchecked = check(budget, probe)
    assert unchecked == []
    assert [(v.key, v.limit, v.source) for v in violations] == [
        ("uss_growth", 16 * MiB, "marker"), ("new_anon", 8 * MiB, "marker")]
    uss, anon = violations
    assert 31 * MiB <= uss.actual < 36 * MiB and type(uss.actual) is Size
    assert 32 * MiB <= anon.actual < 34 * MiB
    assert uss.evidence is not None and anon.evidence is not None
    assert uss.evidence.what == "growth.uss" and uss.evidence == uss.actual and anon.evidence.what == "new_anon"
    assert uss.evidence.before is probe.baseline and uss.evidence.after is anon.evidence.after  # one snapshot for all


def test_limits_the_kernel_does_not_measure_are_reported_unchecked_with_the_reason(tmp_path: Path) -> None:
    probe = Probe(123, procfs=fake_proc(tmp_path, rss=False, peaks=False))  # WSL1-like: no Rss, no VmHWM
    budget = Budget().merged({"rss": Size(1), "rss_growth": Size(1), "peak_rss": Size(1), "uss": Size("32K"),
                              "pss": Size(32 * KiB - 1)}, "marker")
    violations, unchecked = check(budget, probe)
    assert [v.line for v in violations] == ["pss: 32K > 32767B (limit from marker)"]  # uss is 32K: at its limit, not over
    no_rss = ("PID 123: the kernel reported no rss (smaps has no Rss lines); metrics available: mapped, "
              "writeable_private, shared, pss, uss, private_dirty, anonymous, swap")
    assert unchecked == [
        f"rss: not checked: {no_rss}",
        f"rss_growth: not checked: {no_rss}",
        "peak_rss: not checked: PID 123: the kernel wrote no VmHWM / VmRSS lines in its status file",
    ]


@pytest.mark.parametrize(("violation", "line"), [
    (Violation("uss_growth", Size("8MiB"), Size(24576 * KiB), "marker"), "uss_growth: 24576K > 8192K (limit from marker)"),
    (Violation("rss", Size(1000), Size(1500), f"{PYPROJECT} defaults"),
     f"rss: 1500B > 1000B (limit from {PYPROJECT} defaults)"),
])
def test_violation_line(violation: Violation, line: str) -> None:
    assert violation.line == line


def test_report_text_without_evidence_lists_the_limits_alone() -> None:
    assert report_text([Violation("rss", Size("1MiB"), Size("2MiB"), "marker")]) == (
        "pmap budget exceeded (1 limit):\n  rss: 2048K > 1024K (limit from marker)")


def test_report_text_lists_every_broken_limit_then_one_diff(child: Child) -> None:
    probe = Probe(child.pid)
    child.ask("alloc 32")
    violations, _ = check(Budget().merged(LIMITS, "marker"), probe)
    uss, anon = violations
    assert uss.evidence is not None
    diff = uss.evidence.explain()
    assert diff.startswith(f"{child.pid}:   ") and "(pmap diff " in diff
    plain = Violation("rss", Size("1MiB"), Size("2MiB"), "config")  # no evidence: the next one's diff is shown
    assert report_text([plain, uss, anon]) == (
        "pmap budget exceeded (3 limits):\n"
        "  rss: 2048K > 1024K (limit from config)\n"
        f"  {uss.line}\n"
        f"  {anon.line}\n"
        "\n" + diff
    )
    assert report_text([plain, uss, anon]).count("(pmap diff ") == 1


def test_new_anon_counts_anonymous_memory_only_and_new_mapping_any(tmp_path: Path) -> None:
    probe = Probe(123, procfs=fake_proc(tmp_path))
    library = "00040000-00048000 r--p 00000000 fe:01 99 /usr/lib/libx.so\nSize:  32 kB\nRss:  32 kB\n"
    fake_proc(tmp_path, extra=library)
    violations, _ = check(Budget().merged({"new_anon": Size(1), "new_mapping": Size("31K")}, "marker"), probe)
    assert [v.line for v in violations] == ["new_mapping: 32K > 31K (limit from marker)"]
