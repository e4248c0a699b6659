"""A hook implementation: leave a mapping out of budgets and diffs."""

from __future__ import annotations


def pytest_pmap_ignore_mapping(mapping):
    # Memory-mapped device files are the driver's, not ours to budget.
    if mapping.path.startswith("/dev/") and not mapping.path.startswith("/dev/zero"):
        return True
    return None
