"""The `pytest-pmap` command's entry point, kept where earlier releases had it (`pytest_pmap.cli:main`)."""

from __future__ import annotations

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
