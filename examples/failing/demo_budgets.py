"""Demos that fail on purpose, to show what a broken budget prints. Not part of the passing suite:

    pytest examples/failing/demo_budgets.py
"""

from __future__ import annotations

import mmap

import pytest

from pytest_pmap import MiB

LEAK: list[object] = []


def test_an_assertion_on_growth_prints_the_diff(pmap) -> None:
    LEAK.append(bytearray(40 * MiB))
    assert pmap.growth.uss < 8 * MiB


def test_a_new_anonymous_mapping_over_8_mib(pmap) -> None:
    LEAK.append(mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE))
    assert not pmap.new_mappings(anon=True, larger_than="8MiB")


@pytest.mark.pmap(uss_growth="4MiB", rss_growth="4MiB", new_anon="8MiB")
def test_a_marker_budget_lists_every_broken_limit() -> None:
    LEAK.append(bytearray(30 * MiB))
