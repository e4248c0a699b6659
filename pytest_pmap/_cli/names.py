"""The subcommands' names, so that pmap's command line can tell them apart and point to them from
its `--help` without importing them (`commands.COMMANDS` holds the subcommands themselves, in the
same order; a test keeps the two equal)."""

from __future__ import annotations

__all__ = ["SUBCOMMANDS"]

SUBCOMMANDS = ("snapshot", "show", "diff", "watch", "tree", "compare", "merge", "trend", "report")
