"""`python -m pytest_pmap`: the `pytest-pmap` command."""

from .cli import main

raise SystemExit(main())
