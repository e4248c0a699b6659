"""The pytest layer. Loaded by pytest through the `pytest11` entry point `pmap`.

For now it only makes the engine known to pytest; fixtures, markers and options build on it.
"""

from __future__ import annotations
