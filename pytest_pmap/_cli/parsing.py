"""The subcommands' argument parser: argparse, printing through `output`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .output import complain, out

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """argparse, with `--help` printed through `out` (a write error is ours to report, where
    argparse would drop it) and a one-line usage for `pytest-pmap help`."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, add_help=False)
        self.add_argument("-h", "--help", action="help", help=argparse.SUPPRESS)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _print_message(self, message: str, file: Any = None) -> None:
        if file is sys.stderr:
            complain(message)
        else:
            out(message)

    def usage_line(self) -> str:
        """The usage on one line, without `usage: `: `pytest-pmap show [--default | -x ...] FILE`."""
        formatter = argparse.HelpFormatter(self.prog, width=10_000)
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups, prefix="")
        return formatter.format_help().strip()

    def summary(self) -> str:
        """What the command does: the first sentence of its description."""
        return (self.description or "").split(". ")[0].rstrip(".") + "."
