"""`python -m pytest_pmap`: the `pytest-pmap` command."""

from ._cli import main

raise SystemExit(main())
