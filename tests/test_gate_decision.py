"""How the gate decides, without pytest in the way: suspects, the repeats that confirm them or
call them noise, baselines that shrank, the heap's view, and a test's own tolerance."""
from __future__ import annotations

from typing import Optional

import pytest

from pytest_pmap import KiB, MiB
from pytest_pmap._gate.compare import Tolerance, compare, recurs, suspect
from pytest_pmap._gate.environment import Environment
from pytest_pmap._gate.results import RunResults
from pytest_pmap._measure.result import MemoryResult

HERE = Environment(machine="x86_64", python="CPython 3.11.7")


def result(uss: Optional[int], heap: Optional[int] = None, *, peak: int = 0, repeats: tuple[tuple[int, int], ...] = (),
           stopped: str = "", tolerance: str = "") -> MemoryResult:
    """t::a's result: its growth in USS and heap, and each repeat's (uss, heap)."""
    return MemoryResult("t::a", {"uss": uss, "heap": heap}, peak, 0,
                        repeats=tuple({"uss": u, "heap": h} for u, h in repeats), repeats_stopped=stopped,
                        tolerance=tolerance)


def row(base: MemoryResult, head: MemoryResult, metric: str = "uss_growth") -> tuple[str, str]:
    c = compare(RunResults((base,), HERE), RunResults((head,), HERE), metric)
    (only,) = c.rows
    return only.status, only.evidence


def test_a_suspect_whose_every_repeat_grows_again_is_confirmed() -> None:
    status, evidence = row(result(0, 0), result(MiB, MiB, repeats=((MiB + 4 * KiB, MiB),) * 3))
    assert status == "regressed"
    assert evidence == "confirmed 3/3: uss_growth +1028K +1028K +1028K; heap_growth +1024K +1024K +1024K"


def test_a_step_that_does_not_recur_is_noise_and_passes() -> None:
    """An arena (or a huge page, or a collection in another test) moves one call, not the next."""
    base = RunResults((result(0, 0),), HERE)
    head = RunResults((result(MiB, 0, repeats=((0, 0), (4 * KiB, 0), (0, 0))),), HERE)
    c = compare(base, head)
    assert [r.status for r in c.rows] == ["noise"]
    assert c.passed
    assert c.rows[0].evidence == "not confirmed: grew again in 0 of 3 repeats: uss_growth +0K +4K +0K; heap_growth +0K +0K +0K"
    assert any("1 not confirmed, noise" in line for line in c.table())


def test_a_suspect_confirmed_by_some_repeats_only_is_noise() -> None:
    assert row(result(0, 0), result(MiB, 0, repeats=((MiB, 0), (0, 0), (MiB, 0))))[0] == "noise"


def test_a_leak_the_kernel_cannot_see_is_confirmed_by_the_heap() -> None:
    """Served from free heap already resident: USS moves by a page, glibc's in-use bytes by the leak."""
    status, evidence = row(result(0, 0), result(8 * KiB, MiB, repeats=((0, MiB),) * 3))
    assert status == "regressed"
    assert evidence.startswith("confirmed 3/3")
    c = compare(RunResults((result(0, 0),), HERE), RunResults((result(8 * KiB, MiB, repeats=((0, MiB),) * 3),), HERE))
    assert c.rows[0].metric == "heap_growth" and c.rows[0].head == MiB  # the row shows the view that saw it
    assert "[heap_growth]" in "\n".join(c.table())


def test_a_suspect_that_could_not_be_repeated_is_unconfirmed_and_passes() -> None:
    c = compare(RunResults((result(0, 0),), HERE),
                RunResults((result(MiB, MiB, stopped="the call raised ValueError when run again"),), HERE))
    assert [r.status for r in c.rows] == ["unconfirmed"]
    assert c.passed
    assert "the call raised ValueError when run again" in c.rows[0].evidence


def test_without_repeats_one_measurement_decides_as_before() -> None:
    """Confirmation off (`--pmap-confirm 0`) or a file from a run that did not repeat."""
    assert row(result(0, 0), result(MiB, 0))[0] == "regressed"
    assert row(result(0, 0), result(256 * KiB, 0))[0] == "ok"


@pytest.mark.parametrize("repeats", [(), ((0, 0),) * 3])
def test_a_baseline_that_shrank_counts_as_zero(repeats: tuple[tuple[int, int], ...]) -> None:
    """A test that used to free 14 MiB and now frees nothing has not leaked 14 MiB."""
    assert row(result(-14 * MiB, 0), result(0, 0, repeats=repeats))[0] == "ok"
    assert row(result(-14 * MiB, 0), result(2 * MiB, 0))[0] == "regressed"  # but growth past 0 still counts


def test_a_tests_own_tolerance_wins_and_off_exempts_it() -> None:
    assert row(result(0, 0), result(2 * MiB, 0, tolerance="4MiB"))[0] == "ok"
    assert row(result(0, 0), result(2 * MiB, 0, tolerance="1MiB"))[0] == "regressed"
    assert row(result(0, 0), result(64 * MiB, 0, tolerance="off"))[0] == "exempt"


def test_suspect_and_recurs_read_both_views() -> None:
    tol = Tolerance()
    then = result(0, 0)
    assert suspect(then, result(MiB, 0), "uss_growth", tol) == "uss_growth"
    assert suspect(then, result(0, MiB), "uss_growth", tol) == "heap_growth"
    assert suspect(then, result(512 * KiB, 512 * KiB), "uss_growth", tol) == ""  # within the floor
    assert suspect(then, result(MiB, None), "uss_growth", tol) == "uss_growth"  # no glibc: the kernel alone
    assert recurs(then, {"uss": 0, "heap": MiB}, "uss_growth", tol)
    assert not recurs(then, {"uss": 4 * KiB, "heap": None}, "uss_growth", tol)


def test_a_baseline_of_several_runs_judges_each_test_against_its_own_spread() -> None:
    """Samples of one test (`pytest-pmap merge --samples`): the most it grew in any saving run."""
    quiet, stepped = MemoryResult("t::a", {"uss": 8 * KiB}, 8 * KiB), MemoryResult("t::a", {"uss": 1100 * KiB}, 1100 * KiB)
    samples = RunResults((quiet, stepped, MemoryResult("t::b", {"uss": 0}, 0)), HERE, samples=True)
    loaded = RunResults.from_json(samples.to_json(), source="merged")
    assert loaded.samples and len(loaded.results) == 3
    head = RunResults((MemoryResult("t::a", {"uss": 1100 * KiB}, 1100 * KiB), MemoryResult("t::b", {"uss": 0}, 0)), HERE)
    assert [r.status for r in compare(loaded, head, "uss_growth").rows] == ["ok", "ok"]
    single = RunResults((quiet, MemoryResult("t::b", {"uss": 0}, 0)), HERE)  # one run only: the same step is a suspect
    assert [r.status for r in compare(single, head, "uss_growth").rows] == ["regressed", "ok"]
    with pytest.raises(Exception, match="names test 't::a' twice"):
        RunResults.from_json({**samples.to_json(), "samples": False}, source="edited")


@pytest.mark.parametrize(("result", "says"), [
    ({"nodeid": ""}, "that names it"),
    ({"nodeid": "t::a", "growth": {"uss": 10 ** 30}}, "is not a number of bytes"),
    ({"nodeid": "t::a", "peak_growth": -(10 ** 30)}, "is not a number of bytes"),
])
def test_a_result_that_names_no_test_or_holds_an_impossible_size_is_corrupt(result: dict[str, object], says: str) -> None:
    data = {**RunResults((MemoryResult("t::b", {"uss": 0}),), HERE).to_json(), "results": [result]}
    with pytest.raises(Exception, match=says):
        RunResults.from_json(data, source="edited")
