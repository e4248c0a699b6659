"""The gate's confirmation as CI runs it (pytester, live pytest processes): a suspect's call is run
again in place; a leak grows on every call and fails the run, **confirmed**; a one-off does not
recur and is reported as noise; a call that cannot be run again is never failed for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

SUITE = """
import os
import unittest

import pytest

KEEP = []
ONCE = []


def test_leaky():
    if os.environ.get("LEAK_MIB"):  # retained on every call, and really written
        KEEP.append(b"x" * (int(os.environ["LEAK_MIB"]) << 20))


def test_once():
    if os.environ.get("ONCE") and not ONCE:  # a cache filled by the first call, then kept
        ONCE.append(b"y" * (4 << 20))


def test_fragile():
    if os.environ.get("FRAGILE"):  # grows, and fails when run a second time
        assert not ONCE, "run twice"
        ONCE.append(b"z" * (4 << 20))


@pytest.mark.pmap(tolerance="off")
def test_exempt():
    if os.environ.get("LEAK_MIB"):
        KEEP.append(b"x" * (int(os.environ["LEAK_MIB"]) << 20))


def test_steady():
    assert sum(range(1000))


@pytest.fixture
def cache():
    if os.environ.get("FIXTURE_MIB"):  # a fixture that keeps what it made, every time it is set up
        KEEP.append(b"f" * (int(os.environ["FIXTURE_MIB"]) << 20))
    yield


def test_uses_a_leaky_fixture(cache):
    pass


class TestCase(unittest.TestCase):
    def setUp(self):
        self.value = 1

    def test_leaky_case(self):
        if os.environ.get("CASE_MIB"):
            KEEP.append(b"c" * (int(os.environ["CASE_MIB"]) << 20))
"""
TESTS = 7
ENV = ("LEAK_MIB", "ONCE", "FRAGILE", "CASE_MIB", "FIXTURE_MIB")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The suite's baseline, saved once by a pytest process of its own, with nothing leaking."""
    folder = tmp_path_factory.mktemp("confirm-baseline")
    (folder / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(PY_COLORS="0", PYTEST_ADDOPTS="-p no:hypothesispytest -p no:cacheprovider")
    done = subprocess.run([sys.executable, "-mpytest", "--pmap-save-baseline", "base.json"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return (folder / "base.json").read_bytes()


@pytest.fixture
def suite(pytester: pytest.Pytester, saved: bytes, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_suite=SUITE)
    (pytester.path / "base.json").write_bytes(saved)
    return pytester


def saved_then_gated(pytester: pytest.Pytester, change: str, *args: str,
                     after_saving: Callable[[], None] = lambda: None) -> pytest.RunResult:
    """Save the suite's baseline, then gate a run with the variable `change` set (what changed)."""
    assert pytester.runpytest_subprocess("--pmap-save-baseline", "base.json").ret == 0
    after_saving()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(change, "1")
        return pytester.runpytest_subprocess("--pmap-baseline", "base.json", *args)


def results(suite: pytest.Pytester) -> dict[str, dict[str, object]]:
    data = json.loads((suite.path / "head.json").read_text())
    return {r["nodeid"]: r for r in data["results"]}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_leak_grows_on_every_repeat_and_fails_confirmed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("LEAK_MIB", "2")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-json", "head.json", *workers)
    result.assert_outcomes(passed=TESTS)  # the tests passed: the gate fails the run
    assert result.ret == 1
    result.stdout.re_match_lines([
        r"1 test regressed in uss_growth against baseline base\.json.*",
        r".* +test_suite\.py::test_leaky.*",
        r" +confirmed 3/3: uss_growth( \+\d+K){3}; heap_growth \+20\d\dK \+20\d\dK \+20\d\dK",
    ])
    leaky = results(suite)["test_suite.py::test_leaky"]
    repeats = leaky["repeats"]
    assert isinstance(repeats, list) and len(repeats) == 3
    assert all(2 * 1024 * 1024 <= r["heap"] < 2 * 1024 * 1024 + 64 * 1024 for r in repeats)  # the leak, exactly
    assert "exempt" in result.stdout.str() and "test_exempt" not in "".join(
        line for line in result.stdout.lines if "confirmed" in line)


def test_a_one_off_does_not_recur_and_is_reported_as_noise(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCE", "1")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-json", "head.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["no test regressed in uss_growth*",
                                 "1 not confirmed, noise: grew, but not again when run again (not failed): "
                                 "test_suite.py::test_once"])
    once = results(suite)["test_suite.py::test_once"]
    growth = once["growth"]
    assert isinstance(growth, dict) and growth["heap"] >= 4 << 20  # the first call kept 4 MiB ...
    repeats = once["repeats"]
    assert isinstance(repeats, list) and all(r["heap"] < 64 << 10 for r in repeats)  # ... and no repeat did


def test_without_confirmation_the_one_off_fails(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the repeats are for: judged on one measurement, the same run fails."""
    monkeypatch.setenv("ONCE", "1")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-confirm", "0")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["1 test regressed in uss_growth*", "*test_suite.py::test_once*"])


def test_a_call_that_fails_when_run_again_is_unconfirmed_and_its_test_passes(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGILE", "1")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    result.assert_outcomes(passed=TESTS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["1 could not be run again to confirm (not failed): test_suite.py::test_fragile"])


def test_a_unittest_case_is_run_again_with_its_setup(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_MIB", "2")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    result.assert_outcomes(passed=TESTS)
    assert result.ret == 1
    result.stdout.re_match_lines([r".*test_suite\.py::TestCase::test_leaky_case.*", r" +confirmed 3/3: .*"])


def test_a_leak_in_a_fixture_is_the_tests_and_is_confirmed(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test is measured from before its setup to after its teardown, and run again whole."""
    monkeypatch.setenv("FIXTURE_MIB", "4")
    result = suite.runpytest_subprocess("--pmap-baseline", "base.json")
    result.assert_outcomes(passed=TESTS)
    assert result.ret == 1
    result.stdout.re_match_lines([r".*\+4\d\d\dK +512K +\d+% +test_suite\.py::test_uses_a_leaky_fixture.*",
                                  r" +confirmed 3/3: uss_growth( \+4\d\d\dK){3}.*"])


def test_a_unittest_case_that_fails_when_run_again_keeps_its_pass(pytester: pytest.Pytester, saved: bytes) -> None:
    pytester.makepyfile(test_suite=SUITE.replace('        self.value = 1', '        self.value = 1\n'
                                                 '        if ONCE: self.fail("set up twice")\n'
                                                 '        ONCE.append(b"q" * (4 << 20))'))
    (pytester.path / "base.json").write_bytes(saved)
    result = pytester.runpytest_subprocess("--pmap-baseline", "base.json")
    result.assert_outcomes(passed=TESTS)
    result.stdout.fnmatch_lines(["*could not be run again*TestCase::test_leaky_case*"])


@pytest.mark.parametrize(("args", "error"), [
    (["--pmap-confirm", "x"], "--pmap-confirm: 'x' is not a number of repeats from 0 (judge on one measurement) to 100"),
    (["--pmap-confirm", "-1"], "--pmap-confirm: '-1' is not a number of repeats*"),
    (["-o", "pmap_confirm=many"], "pmap_confirm in *: 'many' is not a number of repeats*"),
])
def test_a_bad_number_of_repeats_is_a_usage_error(suite: pytest.Pytester, args: list[str], error: str) -> None:
    result = suite.runpytest_inprocess("--pmap-baseline", "base.json", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {error}"])


def test_a_bad_tolerance_on_a_marker_fails_that_test_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.pmap(tolerance="lots")
        def test_vague():
            pass

        def test_fine():
            pass
    """)
    result = pytester.runpytest_subprocess("--pmap")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*marker on test_a_bad_tolerance_on_a_marker_fails_that_test_by_name.py::test_vague: "
                                 "tolerance='lots': 'lots' is not a tolerance*"])


def test_repeats_are_kept_in_the_results_and_compare_decides_the_same(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONCE", "1")
    monkeypatch.setenv("LEAK_MIB", "2")
    suite.runpytest_subprocess("--pmap-baseline", "base.json", "--pmap-json", "head.json")
    done = subprocess.run([sys.executable, "-m", "pytest_pmap", "compare", "base.json", "head.json"],
                          cwd=suite.path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "confirmed 3/3" in done.stdout and "test_suite.py::test_leaky" in done.stdout
    assert "(not failed): test_suite.py::test_once" in done.stdout
    assert Path(suite.path / "head.json").stat().st_size > 0


def test_a_gate_on_the_peak_is_judged_on_one_measurement(pytester: pytest.Pytester) -> None:
    """A peak does not recur: after the first run glibc keeps the 16 MiB it freed (it raises its
    thresholds), and every repeat peaks inside it. Measured: repeats rose by +0K, so the spike
    would have passed as noise; a peak is therefore judged on its one measurement."""
    pytester.makepyfile(test_peak="""
        import os

        def test_spike():
            if os.environ.get("SPIKE"):  # 16 MiB touched and freed: the peak rises, nothing is kept
                block = bytearray(16 << 20)
                block[::4096] = b"x" * len(block[::4096])
                del block
    """)
    result = saved_then_gated(pytester, "SPIKE", "--pmap-metric", "peak_growth")
    assert result.ret == 1
    result.stdout.re_match_lines([r"1 test regressed in peak_growth .*", r".* \+1[67]\d\d\dK .*test_peak\.py::test_spike"])
    assert "confirmed" not in result.stdout.str()


def test_the_gate_example_does_what_its_docstring_says(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parent.parent / "examples" / "gate" / "test_gate_demo.py"
    pytester.makepyfile(test_gate_demo=example.read_text())
    for name in ("PMAP_DEMO_LEAK", "PMAP_DEMO_WARM"):
        monkeypatch.delenv(name, raising=False)
    assert pytester.runpytest_subprocess("--pmap-save-baseline", "base.json").ret == 0
    assert pytester.runpytest_subprocess("--pmap-baseline", "base.json").ret == 0
    monkeypatch.setenv("PMAP_DEMO_LEAK", "1")
    leak = pytester.runpytest_subprocess("--pmap-baseline", "base.json")
    assert leak.ret == 1
    leak.stdout.re_match_lines([r".* +test_gate_demo\.py::test_lookup", r" +confirmed 3/3: .*"])
    monkeypatch.delenv("PMAP_DEMO_LEAK")
    monkeypatch.setenv("PMAP_DEMO_WARM", "1")
    warm = pytester.runpytest_subprocess("--pmap-baseline", "base.json")
    assert warm.ret == 0
    warm.stdout.fnmatch_lines(["1 not confirmed, noise: * (not failed): test_gate_demo.py::test_warm_up"])


def test_wider_fixtures_of_the_last_test_are_set_up_once_for_all_repeats(pytester: pytest.Pytester) -> None:
    """The last test of the session: its first run tore the session fixture down. Its repeats set it
    up once more, in a run that is not measured: what that fixture keeps per set-up is not the
    test's (each measured repeat would otherwise have grown by it, and confirmed a one-off)."""
    pytester.makeconftest("""
        import os
        import pytest

        REGISTRY = []

        @pytest.fixture(scope="session", autouse=True)
        def registry():
            REGISTRY.append(os.urandom(1 << 20))  # 1 MiB kept per set-up
            with open("setups.txt", "a") as f:
                f.write("setup\\n")
            yield
    """)
    pytester.makepyfile(test_last="""
        import os
        TABLE = []

        def test_first():
            pass

        def test_last():
            if os.environ.get("ONCE") and not TABLE:
                TABLE.append(os.urandom(2 << 20))  # a one-off
    """)
    result = saved_then_gated(pytester, "ONCE", after_saving=lambda: (pytester.path / "setups.txt").unlink())
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["1 not confirmed, noise*: test_last.py::test_last"])
    assert (pytester.path / "setups.txt").read_text() == "setup\nsetup\n"  # the run's, and once for the repeats


@pytest.mark.parametrize("mark", ["@pytest.mark.xfail(reason='r', strict=False)",
                                  "@pytest.mark.usefixtures()  # and pytest.skip() in its call"])
def test_a_suspect_that_did_not_pass_is_unconfirmed_not_failed(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_nopass=f"""
        import os
        import pytest
        TABLE = []

        @pytest.fixture
        def table():
            if os.environ.get("ONCE"):
                TABLE.append(os.urandom(2 << 20))
            yield

        {mark}
        def test_it(table):
            if "skip" in {mark!r}:
                pytest.skip("skipped in its call, after its fixture kept 2 MiB")
            assert not os.environ.get("ONCE")
    """)
    result = saved_then_gated(pytester, "ONCE", "--pmap-json", "head.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["1 could not be run again*: test_nopass.py::test_it"])
    (only,) = json.loads((pytester.path / "head.json").read_text())["results"]
    assert only["repeats_stopped"] == "it did not pass, so it was not run again"


def test_pytest_exit_in_a_repeat_does_not_end_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_exit="""
        import os
        import warnings
        import pytest
        RUNS = []

        def test_leaky():
            RUNS.append(os.urandom(2 << 20) if os.environ.get("LEAK") else b"")
            warnings.warn("once per run")
            if len(RUNS) == 2:
                pytest.exit("not twice")

        def test_after():
            pass
    """)
    result = saved_then_gated(pytester, "LEAK")
    result.assert_outcomes(passed=2, warnings=1)  # test_after ran; the repeat's warning is not counted
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["1 could not be run again*: test_exit.py::test_leaky"])


def test_the_next_module_runs_after_the_last_test_of_a_module_was_run_again(pytester: pytest.Pytester) -> None:
    """The suspect is the last test of its module: its repeats set the module up again, and the
    module is torn down after them, so that the next module's first test sets up cleanly (pytest's
    logging plugin is on, as by default: a teardown phase run once more failed in it, silently, and
    the next test erred with "previous item was not torn down properly")."""
    pytester.makepyfile(test_a="""
        import os
        import pytest
        KEEP = []

        @pytest.fixture(scope="module")
        def shared():
            yield

        def test_first(shared):
            pass

        def test_last(shared):
            if os.environ.get("LEAK"):
                KEEP.append(os.urandom(2 << 20))
    """, test_b="""
        def test_next():
            pass
    """)
    result = saved_then_gated(pytester, "LEAK")
    result.assert_outcomes(passed=3)
    result.stdout.re_match_lines([r".*test_a\.py::test_last", r" +confirmed 3/3: .*"])
