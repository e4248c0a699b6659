"""The pytest plugin, run the way users run it (pytester): fixtures, budgets, failure text, --pmap, hooks.

Each run that measures its own process is a separate pytest process: the measurements must not see
the memory of this one. Runs that measure nothing, or only another process, run in this process.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from test_model import fake_proc

from pytest_pmap import MiB, Reading
from pytest_pmap._measure.probe import Probe

ANON_ROW = r"E? *[+~] [0-9a-f]{16} +\+\d+ +\+\d+ +\+\d+ +rw--- +\[ anon \]"


def test_help_lists_the_options_in_their_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines([
        "memory budgets from /proc/PID/smaps (pytest-pmap):",
        "*--pmap *measure every test's memory*",
        "*--pmap-top=N*how many tests*",
        "*pmap (bool):*",
    ])


def test_the_marker_is_documented_with_its_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.pmap(**limits): *uss_growth: growth of uss during the test*new_anon:*"])


def test_a_growth_assertion_fails_with_pmap_rows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_pmap import MiB
        KEEP = []
        def test_grows(pmap):
            KEEP.append(bytearray(40 * MiB))
            assert pmap.growth.uss < 8 * MiB
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r"E +assert growth\.uss \d+K < 8192K",
        r"E +Address +Kbytes +RSS +Dirty +Mode +Mapping",
        ANON_ROW,
        r"E +mapped: \d+K -> \d+K \(\+\d+K\) +writeable/private: \d+K -> \d+K \(\+\d+K\) +shared: .*",
        r"-+ pmap: PID \d+ since its baseline -+",
    ])
    grown = [line for line in result.outlines if line.startswith("E ") and "[ anon ]" in line]
    assert any(int(line.split()[3].lstrip("+")) >= 40 * 1024 for line in grown), grown


def test_a_size_comparison_with_a_string_explains_itself(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_rss(pmap):
            assert pmap.rss < "1MiB"
    """)
    result = pytester.runpytest_inprocess()  # any process is over 1 MiB: this one will do
    result.stdout.re_match_lines([r"E +assert rss \d+K < 1024K"])


def test_no_new_anonymous_mapping_rule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import mmap
        from pytest_pmap import MiB
        KEEP = []
        def test_maps(pmap):
            KEEP.append(mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE))
            assert not pmap.new_mappings(anon=True, larger_than="8MiB")
        def test_small(pmap):
            KEEP.append(mmap.mmap(-1, 1 * MiB, flags=mmap.MAP_PRIVATE))
            assert not pmap.new_mappings(anon=True, larger_than="8MiB")
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.re_match_lines([
        r"E +(AssertionError: )?assert not NewMappings\(\[[+~][0-9a-f]+ 6\d{4}K new \[anon\]\]\)",
        r"-+ pmap: PID \d+ since its baseline -+",
        # 64 MiB of untouched address space (the kernel may merge a neighbouring arena into it)
        r"[+~] [0-9a-f]{16} +\+6\d{4} +\+\d{1,4} +\+\d{1,4} +rw--- +\[ anon \]",
    ])


def test_a_marker_budget_fails_the_test_listing_every_broken_limit(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        def pytest_pmap_budget_exceeded(item, violations):
            print("HOOK", item.name, sorted(v.key for v in violations))
    """)
    pytester.makepyfile("""
        import pytest
        from pytest_pmap import MiB
        KEEP = []
        @pytest.mark.pmap(uss_growth="4MiB", rss_growth="4MiB", peak_growth="1GiB", new_anon="1MiB")
        def test_grows():
            KEEP.append(bytearray(30 * MiB))
        @pytest.mark.pmap(uss_growth="4MiB")
        def test_small():
            KEEP.append(bytearray(MiB // 2))
    """)
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.re_match_lines([
        r".*HOOK test_grows \['new_anon', 'rss_growth', 'uss_growth'\]",
        r"pmap budget exceeded \(3 limits\):",
        r"  uss_growth: \d+K > 4096K \(limit from marker\)",
        r"  rss_growth: \d+K > 4096K \(limit from marker\)",
        r"  new_anon: \d+K > 1024K \(limit from marker\)",
        ANON_ROW,
        r"mapped: .* -> .*",
    ])
    assert "peak_growth" not in result.stdout.str()


@pytest.mark.parametrize("where", ["module", "class"])
def test_a_marker_on_a_module_or_a_class_budgets_its_tests(pytester: pytest.Pytester, where: str) -> None:
    """The plugin takes part in a run only when something asks for it: a `pmap` marker on a test's
    module (`pytestmark`) or class asks as much as one on the test itself."""
    body = "    def test_grows(self):\n        KEEP.append(bytearray(30 * MiB))\n"
    source = {
        "module": "pytestmark = pytest.mark.pmap(uss_growth='4MiB')\ndef test_grows():\n    KEEP.append(bytearray(30 * MiB))\n",
        "class": "@pytest.mark.pmap(uss_growth='4MiB')\nclass TestGrowth:\n" + body,
    }[where]
    pytester.makepyfile("import pytest\nfrom pytest_pmap import MiB\nKEEP = []\n" + source)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([rf"  uss_growth: \d+K > 4096K \(limit from marker on {where} .+\)"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('uss_grwoth="4MiB"',
         "*marker on test_budget.py::test_bad: unknown budget key 'uss_grwoth' (did you mean 'uss_growth'?)*"),
        ('rss="lots"', "*marker on test_budget.py::test_bad: rss: 'lots' is not a size*"),
        ('"4MiB"', "*marker on test_budget.py::test_bad: pmap() takes keyword limits only*"),
    ],
)
def test_a_bad_marker_is_an_error_of_that_test_only(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(test_budget=f"""
        import pytest
        @pytest.mark.pmap({marker})
        def test_bad():
            pass
        def test_other():
            pass
    """)
    result = pytester.runpytest_subprocess()  # not in this process, which has imported a module test_budget
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.no_fnmatch_line("*During handling*")


PYPROJECT = """
[tool.pytest_pmap]
defaults = { uss_growth = "1GiB" }

[tool.pytest_pmap.budgets]
"test_cfg.py::test_big*" = { rss_growth = "4MiB" }
"test_cfg.py::test_big_but_allowed" = { rss_growth = "512MiB" }
"""


def test_pyproject_budgets_by_glob_and_the_marker_wins(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_cfg="""
        import pytest
        from pytest_pmap import MiB
        KEEP = []
        def test_big():
            KEEP.append(bytearray(20 * MiB))
        def test_big_but_allowed():
            KEEP.append(bytearray(20 * MiB))
        @pytest.mark.pmap(rss_growth="64MiB")
        def test_big_with_marker():
            KEEP.append(bytearray(20 * MiB))
        def test_small():
            pass
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1, passed=3)
    result.stdout.re_match_lines([
        r"FAILED test_cfg.py::test_big - pmap budget exceeded \(1 limit\):",
    ])
    result.stdout.re_match_lines([
        r".*rss_growth: \d+K > 4096K \(limit from .*pyproject.toml \[tool.pytest_pmap\] budgets\['test_cfg.py::test_big\*'\]\)",
    ])


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[tool.pytest_pmap]\ndefaults = { uss_grow = "1MiB" }\n',
         "*pyproject.toml [[]tool.pytest_pmap[]] defaults: unknown budget key 'uss_grow'*"),
        ('[tool.pytest_pmap]\nbudgets = { "x" = { rss = "1 parsec" } }\n',
         "*budgets?'x'?: rss: '1 parsec' is not a size: write a number*"),
        ('[tool.pytest_pmap]\nbudget = {}\n', "*unknown key 'budget'; expected accept and budgets and defaults*"),
        ('[tool.pytest_pmap\n', "*pyproject.toml*Expected ']'*"),
    ],
)
def test_bad_pyproject_is_a_usage_error_naming_the_file(pytester: pytest.Pytester, toml: str, message: str) -> None:
    pytester.makefile(".toml", pyproject=toml)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_peaks_are_exact_since_the_baseline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_pmap import MiB
        def test_peak(pmap):
            buf = bytearray(60 * MiB)
            del buf
            assert pmap.growth.rss < 20 * MiB
            assert pmap.peak_growth > 50 * MiB
            pmap.mark()
            assert pmap.peak_growth < 20 * MiB
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_peak_that_cannot_be_reset_says_so(tmp_path: Path) -> None:
    fs = fake_proc(tmp_path)
    probe = Probe(123, procfs=fs)
    assert "could not be reset" in probe.peak_note and "since PID 123 started" in probe.peak_note
    assert probe.peak_rss == 2048 * 1024
    assert probe.peak_rss.note == probe.peak_note


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]


def test_spawned_processes_are_stopped_and_reaped_even_when_the_test_fails(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    pytester.makeconftest("import pytest_pmap._plugin.fixtures\npytest_pmap._plugin.fixtures.STOP_TIMEOUT = 0.5\n")
    pytester.makepyfile(f"""
        import sys
        SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
        STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                    "print('ready', flush=True); time.sleep(600)"]
        import subprocess
        def record(p):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{p.pid}}\\n")
        def test_ok(pmap_spawn):
            p = pmap_spawn(SLEEP)
            record(p)
            assert p.rss > 0 and p.mapped > p.rss
        def test_fails(pmap_spawn):
            p = pmap_spawn(STUBBORN, stdout=subprocess.PIPE)
            p.process.stdout.readline()
            record(p)
            assert p.rss < 0
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    spawned = [int(line) for line in pids.read_text().split()]
    assert len(spawned) == 2
    assert not any(_alive(pid) for pid in spawned)


def test_spawned_processes_are_reaped_when_pytest_is_interrupted(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    pytester.makepyfile(f"""
        import sys
        def test_interrupted(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", "import time; time.sleep(600)"])
            with open({str(pids)!r}, "w") as f:
                f.write(str(p.pid))
            raise KeyboardInterrupt
    """)
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert not _alive(int(pids.read_text()))


def test_attach_never_stops_the_process(pytester: pytest.Pytester) -> None:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        pytester.makepyfile(f"""
            def test_attach(pmap_attach):
                p = pmap_attach({proc.pid})
                assert p.pid == {proc.pid} and p.rss > 0
                assert not p.new_mappings()
        """)
        pytester.runpytest_inprocess().assert_outcomes(passed=1)  # it measures another process
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_spawned_process_that_exits_keeps_its_last_reading(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sys
        def test_exits(pmap_spawn):
            p = pmap_spawn([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=__import__("subprocess").PIPE)
            rss = p.rss
            p.process.stdin.close()
            p.process.wait()
            assert p.rss == rss and p.snapshot() is p.last
    """)
    pytester.runpytest_inprocess().assert_outcomes(passed=1)  # it measures another process


def test_pmap_option_prints_the_top_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_pmap import MiB
        KEEP = []
        def test_big():
            KEEP.append(bytearray(24 * MiB))
        def test_small():
            KEEP.append(bytearray(MiB))
        def test_none():
            pass
    """)
    result = pytester.runpytest_subprocess("--pmap", "--pmap-top", "2")
    result.assert_outcomes(passed=3)
    result.stdout.re_match_lines([
        r"=+ pmap: memory per test =+",
        r"growth from each test's setup to its teardown, in KiB; .*",
        r" +RSS +USS +peak +writable private +new mappings +test",
        r" +\+2\d{4} +\+2\d{4} +\+2\d{4} +\+\d+ +\d+ +test_pmap_option_prints_the_top_tests.py::test_big",
        r" +\+\d+ .*::test_small",
        r"3 tests measured; .*",
    ])
    assert "::test_none" not in result.stdout.str()


def test_the_ini_turns_measuring_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npmap = true\npmap_top = 1\n")
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass")
    result = pytester.runpytest_inprocess()
    result.stdout.fnmatch_lines(["*pmap: memory per test*", "2 tests measured*"])


def test_hooks_ignore_mappings_see_snapshots_and_get_the_results(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_pmap import MiB
        def pytest_pmap_ignore_mapping(mapping):
            return mapping.is_anon and mapping.size >= 32 * MiB
        def pytest_pmap_snapshot(probe, snapshot):
            print("SNAPSHOT", probe.pid == snapshot.pid, len(snapshot.mappings) > 0)
        def pytest_pmap_session_report(results):
            print("REPORT", sorted(r.nodeid.split("::")[1] for r in results))
    """)
    pytester.makepyfile("""
        import mmap
        from pytest_pmap import MiB
        KEEP = []
        def test_reserve(pmap):
            KEEP.append(mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE))
            assert not pmap.new_mappings(anon=True, larger_than="8MiB")
        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-s", "--pmap")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SNAPSHOT True True*", "*REPORT [[]'test_plain', 'test_reserve'[]]"])


def test_ignored_mappings_stay_out_of_the_explanation_of_a_failing_assertion(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_pmap import MiB
        def pytest_pmap_ignore_mapping(mapping):
            return mapping.is_anon and mapping.size >= 32 * MiB
    """)
    pytester.makepyfile("""
        import mmap
        from pytest_pmap import MiB
        KEEP = []
        def test_reserve_and_touch(pmap):
            reserve = mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE)
            reserve[: 40 * MiB] = b"x" * (40 * MiB)
            KEEP.append(reserve)
            assert pmap.growth.rss < 8 * MiB
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    explanation = [line for line in result.outlines if line.startswith("E ")]
    assert any("assert growth.rss" in line for line in explanation), explanation
    assert not [line for line in explanation if re.search(r"\+6553[26] .*\[ anon \]", line)], explanation


def test_without_procfs_fixtures_skip_and_pmap_says_it_does_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_PMAP_PROCFS", str(pytester.path / "no-proc"))
    pytester.makepyfile("""
        import pytest
        def test_self(pmap): pass
        def test_spawn(pmap_spawn): pass
        def test_attach(pmap_attach): pass
        @pytest.mark.pmap(rss="1GiB")
        def test_marked(): pass
        def test_plain(): pass
    """)
    result = pytester.runpytest_inprocess("--pmap", "-rs", "-W", "ignore::pytest.PytestConfigWarning")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines([
        "--pmap did nothing: there is no procfs at */no-proc (PYTEST_PMAP_PROCFS=*/no-proc): set PYTEST_PMAP_PROCFS to "
        "where procfs is mounted, or unset it to read /proc",
        "SKIPPED*: there is no procfs at */no-proc*",
        "SKIPPED*: memory budget not checked: there is no procfs at*",
    ])


def test_xdist_workers_measure_and_the_controller_reports_once(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("\n".join(f"def test_{i}(): pass" for i in range(6)))
    result = pytester.runpytest_subprocess("-n", "2", "--pmap", "--pmap-top", "10")
    result.assert_outcomes(passed=6)
    assert result.stdout.str().count("pmap: memory per test") == 1
    result.stdout.fnmatch_lines(["6 tests measured*"])


def test_readings_remember_their_snapshots() -> None:
    probe = Probe()
    keep = bytearray(8 * MiB)
    growth = probe.growth.rss
    assert isinstance(growth, Reading) and growth.before is probe.baseline and growth.after is probe.last
    assert "[ anon ]" in growth.explain() and keep
