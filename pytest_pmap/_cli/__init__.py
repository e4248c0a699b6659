"""The `pytest-pmap` command (also `python -m pytest_pmap`). Never imports pytest: it must start fast.

`pytest-pmap [-x|-d|-X|-XX|-c|-C F] [-q] [-p] [-A L[,H]] PID...` (and `-n`, `-N F`) does exactly
what procps-ng pmap does (`pmap`, `rcfile`). The subcommands work on snapshots and results files
(`commands`); `pytest-pmap help` lists them, each line made from the subcommand's own parser.
"""

from __future__ import annotations

import sys

from .names import SUBCOMMANDS
from .output import WriteError, complain, out

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["help_text", "main"]


def help_text() -> str:
    """What `pytest-pmap help` prints: pmap's synopsis and every subcommand's usage, from the parsers."""
    from .commands import usage
    from .pmap import SYNOPSIS

    lines = [
        "pytest-pmap: the memory map of a Linux process, exactly as procps-ng pmap prints it.",
        "",
        f"  {SYNOPSIS}",
        "        print like pmap (pytest-pmap -h shows pmap's own options); -n|-N FILE writes pmap's rc file",
    ]
    for line, summary in usage():
        lines += [f"  {line}", f"        {summary}"]
    return "\n".join([*lines, "", "Each subcommand takes --help.", ""])


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    if argv is None:
        # Like pmap and every other filter: end quietly when the reader of our output goes away
        # (`pytest-pmap -X PID | head`), instead of a BrokenPipeError; and on Ctrl-C, by SIGINT
        # as pmap ends, rather than with a KeyboardInterrupt traceback (a SIGINT our parent chose
        # to ignore, as a shell does for background jobs, stays ignored). A file being written
        # is still cleaned up first (`_engine/files`).
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("help", "--pytest-pmap-help"):
        try:
            out(help_text())
        except WriteError as exc:
            if not exc.quiet:
                complain(f"pytest-pmap help: write error: {exc}\n")
            return 1
        return 0
    if args and args[0] in SUBCOMMANDS:  # anything else is pmap's command line
        from .commands import run

        return run(args[0], args[1:])
    from .pmap import main as pmap_main

    return pmap_main(args)
