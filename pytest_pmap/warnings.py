"""The warning pytest-pmap issues, `PmapWarning`.

It is defined in `pytest_pmap.errors`, where the engine (which never imports pytest) can issue it
too; this module names the same class, for code that imported it from here.
"""

from __future__ import annotations

from .errors import PmapWarning

__all__ = ["PmapWarning"]
