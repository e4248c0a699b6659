"""`--pmap-trace`: tracemalloc during measured calls names the Python lines that kept the memory.

Runs that measure their own process are separate pytest processes (pytester subprocesses).
"""
from __future__ import annotations

import json
import re
import tracemalloc

import pytest

from pytest_pmap._measure.result import MemoryResult
from pytest_pmap._measure.trace import Allocations, TracedLine, Tracer


def test_a_failing_budget_names_the_allocating_line_in_20_of_20_tests(pytester: pytest.Pytester) -> None:
    # 20 tests, each breaking its budget from a line of its own, half with large blocks (mmap'd
    # by glibc), half with small objects (CPython's arenas); every failure must name its line first.
    pytester.makepyfile(test_twenty="""
        import pytest
        KEEP = []

        def big(n):
            KEEP.append([b"x" * (1 << 20) for _ in range(n)])  # BIG

        def small(n):
            KEEP.append([(i, str(i)) for i in range(n)])  # SMALL

        @pytest.mark.parametrize("run", range(20))
        @pytest.mark.pmap(uss_growth="4MiB")
        def test_grows(run):
            if run % 2:
                small(50_000 + run)
            else:
                big(40 + run)
    """)
    source = (pytester.path / "test_twenty.py").read_text().splitlines()
    big = next(i for i, line in enumerate(source, 1) if "# BIG" in line)
    small = next(i for i, line in enumerate(source, 1) if "# SMALL" in line)
    result = pytester.runpytest_subprocess("--pmap-trace", "-p", "no:randomly")
    result.assert_outcomes(failed=20)
    text = result.stdout.str()
    sections = re.split(r"_{3,} test_grows\[(\d+)\] _{3,}", text)[1:]
    named = 0
    for run, section in zip(sections[::2], sections[1::2]):
        first = re.search(r"tracemalloc: the Python lines that kept most of what they allocated:\n"
                          r"\s+\S+ \S+ +\d+ blocks? +(\S+):", section)
        assert first is not None, section
        expected = f"test_twenty.py:{small if int(run) % 2 else big}"
        assert first.group(1) == expected, section
        assert re.search(r"tracemalloc saw [\d.]+ [KMG]iB of [\d.]+ [KMG]iB \(uss growth\)", section), section
        named += 1
    assert named == 20
    for machinery in ("_pytest/", "pluggy/", "pytest_pmap/"):
        assert not re.search(rf"^\s+\S+ \S+ +\d+ blocks? +\S*{machinery}", text, re.MULTILINE), machinery


def test_the_top_line_shows_where_it_was_called_from(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        CACHE = {}

        def remember(key):
            CACHE[key] = b"x" * (1 << 20)

        def fill():
            for key in range(24):
                remember(key)

        @pytest.mark.pmap(uss_growth="8MiB", trace=True)
        def test_fill():
            fill()
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r" +2\d(\.\d)? MiB +2\d blocks +test_.*\.py:5: CACHE\[key\] = b\"x\" \* \(1 << 20\)",
        r" +test_.*\.py:5 was reached from:",
        r" +test_.*\.py:13: fill\(\)",
        r" +test_.*\.py:9: remember\(key\)",
        r"tracemalloc saw 2\d(\.\d)? MiB of 2\d(\.\d)? MiB \(uss growth\).*",
    ])


def test_tracemalloc_runs_during_traced_calls_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import tracemalloc
        import pytest

        @pytest.mark.pmap(uss_growth="1GiB")
        def test_traced():
            assert tracemalloc.is_tracing()

        def test_after():
            assert not tracemalloc.is_tracing()

        @pytest.mark.pmap(uss_growth="1GiB", trace=False)
        def test_marker_turns_it_off():
            assert not tracemalloc.is_tracing()
    """)
    pytester.runpytest_subprocess("--pmap-trace").assert_outcomes(passed=3)


def test_tracemalloc_started_by_the_test_is_left_alone(pytester: pytest.Pytester) -> None:
    # tracing that was on before the call (`python -X tracemalloc`, a fixture) is the user's: never stopped
    pytester.makepyfile("""
        import tracemalloc
        import pytest

        @pytest.fixture(scope="module", autouse=True)
        def user_traces():
            tracemalloc.start()
            yield
            tracemalloc.stop()

        @pytest.mark.pmap(uss_growth="1GiB")
        def test_traced_by_the_user():
            assert tracemalloc.is_tracing()

        def test_still_tracing():
            assert tracemalloc.is_tracing()
    """)
    pytester.runpytest_subprocess("--pmap-trace").assert_outcomes(passed=2)


def test_a_fixture_assertion_gets_the_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        KEEP = []
        def test_grows(pmap):
            KEEP.append(bytearray(b"x" * (48 << 20)))
            assert pmap.growth.uss < 8 << 20
    """)
    result = pytester.runpytest_subprocess("--pmap-trace")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r"-+ pmap: tracemalloc -+", r" +4\d(\.\d)? MiB +\d blocks? +test_.*\.py:3: KEEP\.append.*"])


def test_the_ini_and_the_depth_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npmap_trace = true\npmap_trace_depth = 1\n")
    pytester.makepyfile("""
        import tracemalloc
        import pytest

        @pytest.mark.pmap(uss_growth="1GiB")
        def test_depth():
            assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 1
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    pytester.runpytest_subprocess("--pmap-trace-depth", "3", "-k", "nothing").assert_outcomes(deselected=1)


@pytest.mark.parametrize(("args", "ini", "message"), [
    (["--pmap-trace-depth", "0"], "", "ERROR: --pmap-trace-depth 0: give 1 or more frames"),
    ([], "pmap_trace_depth = deep", "ERROR: pmap_trace_depth = 'deep' in tox.ini is not a number of frames"),
    ([], "pmap_trace = maybe", "ERROR: pmap_trace in tox.ini: *write true or false*"),
])
def test_bad_trace_settings_are_named(pytester: pytest.Pytester, args: list[str], ini: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_trace_marker_fails_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.pmap(uss_growth="8MiB", trace="yes")
        def test_x(): pass
    """)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*marker on test_a_bad_trace_marker_fails_its_test.py::test_x: trace='yes': give True*"])


def test_results_files_keep_the_lines_and_the_gate_shows_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate="""
        import os
        KEEP = []
        def test_grows():
            KEEP.append([b"x" * (1 << 20) for _ in range(int(os.environ["MIB"]))])
    """)
    base, now = pytester.path / "base.json", pytester.path / "now.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIB", "1")
        pytester.runpytest_subprocess("--pmap-save-baseline", str(base)).assert_outcomes(passed=1)
        mp.setenv("MIB", "24")
        result = pytester.runpytest_subprocess("--pmap-baseline", str(base), "--pmap-trace", "--pmap-json", str(now),
                                               "--pmap-markdown", str(pytester.path / "pr.md"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.re_match_lines([r"1 test regressed.*", r" +2\d(\.\d)? MiB +2\d blocks +test_gate\.py:4: KEEP\.append.*"])
    saved = json.loads(now.read_text())["results"][0]
    assert saved["trace"]["lines"][0]["where"] == "test_gate.py:4"
    assert MemoryResult.from_json(saved).trace == Allocations.from_json(saved["trace"])
    assert "test_gate.py:4: KEEP.append" in (pytester.path / "pr.md").read_text()
    assert json.loads(base.read_text())["results"][0].get("trace") is None  # untraced: no lines


def test_a_result_without_a_trace_still_loads() -> None:
    old = {"nodeid": "t.py::test", "growth": {"uss": 4096}, "peak_growth": 0}
    assert MemoryResult.from_json(old).trace is None
    with pytest.raises(TypeError):
        MemoryResult.from_json({**old, "trace": {"lines": [{"where": "a.py:1", "size": "big", "count": 1}]}})


def test_the_tracer_stops_and_frees_its_traces() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already running in this process")
    tracer = Tracer(depth=4, root="/")
    tracer.start()
    kept = [bytes(1000) + b"x" for _ in range(100)]
    allocations = tracer.finish()
    assert not tracemalloc.is_tracing()
    assert allocations is not None and allocations.lines
    top = allocations.lines[0]
    assert top.where.endswith(f"test_trace.py:{_line_of('kept = [bytes(1000)')}") and top.count >= 100
    assert allocations.total >= 100 * 1000
    del kept


def test_the_share_tracemalloc_saw_is_said() -> None:
    allocations = Allocations((TracedLine("a.py:3", 30 << 20, 30, "x()"),), (), 30 << 20, 1 << 20)
    text = allocations.render(40 << 20, "uss growth")
    assert text.endswith("tracemalloc saw 30 MiB of 40 MiB (uss growth); its own traces took 1 MiB: "
                         "the rest is native memory or allocator overhead")
    assert "a.py:3: x()" in text


def _line_of(fragment: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if fragment in line and "_line_of" not in line)


def test_the_machinerys_allocations_are_left_out() -> None:
    # what our code (or pytest's) allocates, even through the standard library, is not the test's
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already running in this process")
    from pytest_pmap import Size, parse_size

    tracer = Tracer(depth=8, root="/")
    tracer.start()
    ours = [Size(parse_size(f"{i}K")) for i in range(2000, 6000)]
    theirs = [str(i) * 50 for i in range(2000)]
    allocations = tracer.finish()
    assert allocations is not None
    assert allocations.lines[0].where.endswith(f"test_trace.py:{_line_of('theirs = [str(i)')}")
    assert not [line for line in allocations.lines if "pytest_pmap" in line.where or "_pytest" in line.where]
    del ours, theirs
