"""The `pytest-pmap` command (also `python -m pytest_pmap`). Never imports pytest: it must start fast.

`pytest-pmap [-x|-d|-X|-XX|-c|-C F] [-q] [-p] [-A L[,H]] PID...` (and `-n`, `-N F`) does exactly
what procps-ng pmap does (`pmap`, `rcfile`). The subcommands work on snapshots and results files
(`commands`); `pytest-pmap help` lists them.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["COMMANDS", "HELP", "main"]

#: The subcommands; anything else is pmap's command line.
COMMANDS = ("snapshot", "show", "diff", "watch", "compare")

HELP = """\
pytest-pmap: the memory map of a Linux process, exactly as procps-ng pmap prints it.

  pytest-pmap [-x|-d|-X|-XX|-c|-C FILE] [-q] [-p] [-A LOW[,HIGH]] PID...
        print like pmap (pytest-pmap -h shows pmap's own options); -n|-N FILE writes pmap's rc file
  pytest-pmap snapshot PID -o FILE [--maps-only]
        save a process's map (smaps) to a JSON snapshot file
  pytest-pmap show FILE [-x|-d|-X|-XX] [-q] [-p]
        print a saved snapshot as pmap would have printed it then
  pytest-pmap diff BEFORE AFTER [-x|-d] [--top N]
        what appeared, vanished or grew between two snapshots (files or live PIDs)
  pytest-pmap watch PID [-n SECONDS] [-c COUNT]
        pmap -d's summary line again and again, with the change since the last line
  pytest-pmap compare BASE HEAD [--metric M] [--tolerance T] [--markdown FILE]
        the baseline gate on two results files (--pmap-json); exit 1 when a test regressed

Each subcommand takes --help.
"""


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    if argv is None:
        # Like pmap and every other filter: end quietly when the reader of our output goes away
        # (`pytest-pmap -X PID | head`), instead of a BrokenPipeError.
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("help", "--pytest-pmap-help"):
        sys.stdout.write(HELP)
        return 0
    if args and args[0] in COMMANDS:
        from .commands import run

        return run(args[0], args[1:])
    from .pmap import main as pmap_main

    return pmap_main(args)
