"""The warnings pytest-pmap issues."""

from __future__ import annotations

import pytest

__all__ = ["PmapWarning"]


class PmapWarning(pytest.PytestWarning):
    """What a passing test would otherwise hide: a memory budget the kernel gives no numbers for,
    or a process `pmap_spawn` started that crashed or had to be killed. Make it an error with
    `-W error::pytest_pmap.PmapWarning`."""
