"""The test that catches the cache in report.py: `pytest examples/leaks/hunt --pmap-leaks`."""
from __future__ import annotations

from report import monthly


def test_monthly_report_has_every_row() -> None:
    assert monthly().count("\n") == 3999
