"""Budgets set in pyproject.toml, without touching the tests:

    [tool.pytest_pmap.budgets]
    "examples/plugin/test_config_budgets.py::*" = { uss_growth = "16MiB", peak_growth = "64MiB" }

A marker on a test overrides the configured value for that test.
"""

from __future__ import annotations

import json

import pytest

from pytest_pmap import MiB

KEEP: list[object] = []


def test_parsing_a_document_within_the_configured_budget() -> None:
    document = json.dumps([{"id": i, "name": f"item {i}"} for i in range(20_000)])
    KEEP.append(json.loads(document))


@pytest.mark.pmap(uss_growth="48MiB")           # this test is allowed more than the default
def test_a_marker_overrides_the_configuration() -> None:
    KEEP.append(bytes(24 * MiB))
