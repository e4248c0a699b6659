"""`--pmap-leaks`: the verdict on series of numbers, then live runs (pytester subprocesses, each
measuring its own process)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_pmap import KiB, MiB
from pytest_pmap._measure.leaks import FLOORS, LeakCheck, judge
from pytest_pmap._measure.result import MemoryResult

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leaks" / "test_leaks.py"


@pytest.mark.parametrize(("series", "grown"), [
    ({"heap": [MiB] * 5, "uss": [MiB + 4 * KiB] * 5}, ["heap", "uss"]),            # a steady leak
    ({"heap": [256 * KiB] * 5, "uss": [0, 0, 0, 4096, 0]}, ["heap"]),             # in free heap: pages stay
    ({"blocks": [20_000] * 5, "uss": [1280 * KiB, 0, 1024 * KiB, 1280 * KiB, 1024 * KiB]}, ["blocks", "uss"]),
    ({"heap": [0] * 5, "uss": [0] * 5, "blocks": [3, 4, 3, 3, 3]}, []),           # clean, or a cache the warm-up filled
    ({"uss": [8 * MiB, 0, 0, 0, 0]}, []),                                         # a step on the first call only
    ({"uss": [64 * KiB, 0, 64 * KiB, 0, 64 * KiB]}, []),                           # noise now and then
    ({"heap": [None, MiB, MiB, MiB, MiB]}, []),                                   # a counter that could not be read
    ({"heap": [MiB, MiB, MiB]}, ["heap"]),
    ({"heap": [MiB, 0, MiB]}, []),                                                # under five calls, no call may miss
])
def test_the_verdict_on_series(series: dict[str, list[int | None]], grown: list[str]) -> None:
    assert sorted(judge(series)) == sorted(grown)


def test_a_leak_is_shown_with_the_kernels_series() -> None:
    check = LeakCheck(True, 5, {"uss": (1052672, 1048576, 1048576, 1052672, 1048576), "heap": (MiB,) * 5},
                      ("uss", "heap"), 5)
    assert check.headline() == "leaks ~1 MiB per call: +1028K +1024K +1024K +1028K +1024K"
    assert LeakCheck.from_json(json.loads(json.dumps(check.to_json()))) == check
    assert FLOORS["heap"] < 256 * KiB


def test_old_results_without_a_leak_check_still_load() -> None:
    assert MemoryResult.from_json({"nodeid": "t.py::test", "growth": {}}).leak is None


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(EXAMPLE, pytester.path / "test_leaks.py")
    return pytester


def test_the_example_leaks_fail_and_the_rest_pass(suite: pytest.Pytester) -> None:
    out = suite.path / "r.json"
    md = suite.path / "pr.md"
    result = suite.runpytest_subprocess("--pmap-leaks", "--pmap-json", str(out), "--pmap-markdown", str(md))
    result.assert_outcomes(failed=3, passed=3)
    result.stdout.re_match_lines([
        r"FAILED test_leaks.py::test_leaks_1mib_per_call - leaks ~1(\.\d)? MiB per call: .*",
        r"FAILED test_leaks.py::test_leaks_256kib_per_call - leaks ~\d+(\.\d)? KiB per call.*",
        r"FAILED test_leaks.py::test_leaks_small_objects - leaks ~.* per call.*",
    ])  # in order, not next to each other: under CI=true pytest shows each whole message in the summary
    # 15 calls' growth; one may read lower (a page the kernel took back meanwhile: seen under load)
    result.stdout.re_match_lines([r"leaks ~1(\.\d)? MiB per call: (\+\d+K ){14}\+\d+K$",
                                  r"  15 measured calls after a warm-up call "
                                  r"\(the first 5 made it a suspect; 10 more confirmed it\)",
                                  r" +heap: (\+10\d\dK ){14}\+10\d\dK  <- grew every call",
                                  r"pmap diff between the first and the last measured call:"])
    verdicts = {r["nodeid"].rpartition("::")[2]: r["leak"] for r in json.loads(out.read_text())["results"]}
    assert verdicts["test_cache_fills_once"]["leaks"] is False and verdicts["test_cache_fills_once"]["calls"] == 5
    assert verdicts["test_leaks_1mib_per_call"]["per_call"] >= MiB
    report = md.read_text()
    assert "### Leaks" in report and "3 of 6 tests checked leak." in report


def test_a_cache_that_fills_over_a_few_calls_is_not_a_leak(pytester: pytest.Pytester) -> None:
    # grows on the warm-up and the 5 first measured calls, then stops: the escalation clears it
    pytester.makepyfile("""
        CACHE = []
        def test_fills_six_then_stops():
            if len(CACHE) < 6:
                CACHE.append(b"x" * (1 << 20))
    """)
    result = pytester.runpytest_subprocess("--pmap-leaks", "--pmap", "--pmap-json", "r.json")
    result.assert_outcomes(passed=1)
    leak = json.loads((pytester.path / "r.json").read_text())["results"][0]["leak"]
    assert leak["escalated"] is True and leak["leaks"] is False and leak["calls"] == 15


def test_fixtures_are_set_up_once_and_the_marker_picks_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        SETUPS = []
        CALLS = []
        KEPT = []

        @pytest.fixture
        def thing():
            SETUPS.append(1)
            return object()

        @pytest.mark.pmap(leaks=3)
        def test_marked(thing):
            CALLS.append(thing)
            KEPT.append(b"x" * (1 << 20))

        def test_unmarked():
            KEPT.append(b"x" * (1 << 20))

        def test_counts():
            assert len(SETUPS) == 1
            assert len(CALLS) == 1 + 3 + 6 and len(set(map(id, CALLS))) == 1
    """)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*_ test_marked _*", "leaks ~1* MiB per call: *"])


def test_the_pmap_fixture_measures_each_repeated_call(pytester: pytest.Pytester) -> None:
    # the probe is marked again before each call: the test's own assertion holds on every call
    pytester.makepyfile("""
        import pytest
        KEPT = []
        @pytest.mark.pmap(leaks=True)
        def test_leaks_under_its_budget(pmap):
            KEPT.append(b"x" * (1 << 20))
            assert pmap.growth.uss < 8 << 20
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*leaks ~1* MiB per call*"])
    result.stdout.no_fnmatch_line("*leak check stopped*")


def test_under_xdist_with_the_lines_that_grew(suite: pytest.Pytester) -> None:
    out = suite.path / "r.json"
    result = suite.runpytest_subprocess("-n", "2", "--pmap-leaks", "--pmap-trace", "--pmap-json", str(out))
    result.assert_outcomes(failed=3, passed=3)
    result.stdout.re_match_lines([r" +\d+(\.\d)? MiB +1\d blocks +test_leaks\.py:15: KEPT\.append\(b\"x\" \* \(1 << 20\)\).*"])
    leaks = [r for r in json.loads(out.read_text())["results"] if r["leak"]["leaks"]]
    assert len(leaks) == 3


def test_a_repeat_that_fails_stops_the_check_and_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        RUNS = []
        @pytest.mark.pmap(leaks=True)
        def test_once_only():
            RUNS.append(1)
            assert len(RUNS) == 1
    """)
    result = pytester.runpytest_subprocess("-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*leak check stopped after 0 calls: the call raised AssertionError when run again*"])


@pytest.mark.parametrize(("args", "marker", "message"), [
    (["--pmap-leaks", "--pmap-leaks-calls", "1"], "", "ERROR: --pmap-leaks-calls 1: give 2 or more calls"),
    ([], "leaks=1", "*marker on *::test_x: leaks=1: give True, False, or a number of measured calls of 2 or more*"),
    ([], "leaks='many'", "*leaks='many': give True*"),
])
def test_bad_leak_settings_are_named(pytester: pytest.Pytester, args: list[str], marker: str, message: str) -> None:
    head = f"@pytest.mark.pmap({marker})\n" if marker else ""
    pytester.makepyfile(f"import pytest\n{head}def test_x(): pass\n")
    result = pytester.runpytest_inprocess(*args)
    if marker:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([message])
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


def test_a_bounded_cache_with_a_new_key_every_call_passes(pytester: pytest.Pytester) -> None:
    # the map changes on every call while the cache fills: the hunt's own readings must not keep it
    pytester.makepyfile("""
        import functools, itertools
        RUN = itertools.count()

        @functools.lru_cache(maxsize=8)
        def render(title):
            return "\\n".join(f"{title} {i:>6} {'.' * 200}" for i in range(4000))

        def test_render():
            assert render(f"report {next(RUN)}").count("\\n") == 3999
    """)
    result = pytester.runpytest_subprocess("--pmap-leaks", "--pmap", "--pmap-json", "r.json")
    result.assert_outcomes(passed=1)
    leak = json.loads((pytester.path / "r.json").read_text())["results"][0]["leak"]
    assert leak["leaks"] is False and leak["escalated"] is True
