"""pytest-pmap's pytest plugin, loaded through the `pytest11` entry point `pmap`.

The plugin itself lives in `pytest_pmap._plugin`; this module gathers its hooks and fixtures,
which pytest finds here by name.
"""

from __future__ import annotations

from ._measure.result import MemoryResult
from ._plugin.fixtures import pmap, pmap_attach, pmap_spawn
from ._plugin.options import pytest_addhooks, pytest_addoption, pytest_configure
from ._plugin.report import pytest_sessionfinish, pytest_terminal_summary, pytest_testnodedown
from ._plugin.runner import pytest_assertrepr_compare, pytest_collection_modifyitems
from .warnings import PmapWarning

__all__ = [
    "MemoryResult",
    "PmapWarning",
    "pmap",
    "pmap_attach",
    "pmap_spawn",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_assertrepr_compare",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
]
