"""pmap's command line read as procps-ng pmap 4.0.2 reads it: options the way GNU `getopt_long`
reads them (permuted, abbreviated long options, the same messages), PIDs the way pmap reads them
(`/proc/` prefix, `strtoul` base 0), `-A` ranges, and the rc file that `-c` and `-C` name.
"""

from __future__ import annotations

import os
from collections import namedtuple

from .names import SUBCOMMANDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional

    from .._engine.render.table import Shown

    class _OptionsFields(NamedTuple):
        fmt: str = "default"
        """default, x, d, X or XX."""
        quiet: bool = False
        """-q: no column header, no footer."""
        show_path: bool = False
        """-p: full paths."""
        range: tuple[int, int] = (0, (1 << 64) - 1)
        """-A: (low, high), both inclusive."""
        pids: tuple[int, ...] = ()
        """The PIDs, in argument order (duplicates kept)."""
        warnings: str = ""
        """Text for stderr that does not stop the run (-r, an rc file's odd lines)."""
        columns: Optional[Shown] = None
        """-c and -C: the columns the rc file enables; None otherwise."""
        create_rc: Optional[str] = None
        """-n and -N: the rc file to write (and nothing else to do)."""
        default_rc: bool = False
        """True when the rc file is the default one, `~/.pmaprc` (-n, -c): pmap's messages name it so."""
else:  # the command imports neither `typing` nor `dataclasses` (see _engine/__init__.py)
    _OptionsFields = namedtuple(
        "_OptionsFields", "fmt quiet show_path range pids warnings columns create_rc default_rc",
        defaults=("default", False, False, (0, (1 << 64) - 1), (), "", None, None, False),
    )

__all__ = ["HELP_MORE", "PROG", "SYNOPSIS", "VERSION", "Options", "UsageExit", "parse_args", "parse_pid", "parse_range"]

PROG = "pmap"
VERSION = "pmap from procps-ng 4.0.2\n"
USAGE = """
Usage:
 pmap [options] PID [PID ...]

Options:
 -x, --extended              show details
 -X                          show even more details
            WARNING: format changes according to /proc/PID/smaps
 -XX                         show everything the kernel provides
 -c, --read-rc               read the default rc
 -C, --read-rc-from=<file>   read the rc from file
 -n, --create-rc             create new default rc
 -N, --create-rc-to=<file>   create new rc to file
            NOTE: pid arguments are not allowed with -n, -N
 -d, --device                show the device format
 -q, --quiet                 do not display header and footer
 -p, --show-path             show path in the mapping
 -A, --range=<low>[,<high>]  limit results to the given range

 -h, --help     display this help and exit
 -V, --version  output version information and exit

For more details see pmap(1).
"""
#: pmap's command line in one line, for `pytest-pmap help` (a test parses each option in it).
SYNOPSIS = "pytest-pmap [-x|-d|-X|-XX|-c|-C FILE] [-q] [-p] [-A LOW[,HIGH]] PID..."
#: What `-h` and `--help` print after pmap's own text, which they keep byte for byte: the
#: subcommands, which pmap's usage cannot show (docs/engine.md, where we differ from pmap).
HELP_MORE = (
    "\npytest-pmap also saves, shows, compares and watches memory maps:\n"
    f" pytest-pmap {{{','.join(SUBCOMMANDS)}}} ...\n"
    "See `pytest-pmap help`; each subcommand takes --help.\n"
)
_SHORT = "xXrdqA:hVcC:nN:p"
_LONG = {
    "extended": ("x", False),
    "device": ("d", False),
    "quiet": ("q", False),
    "range": ("A", True),
    "help": ("h", False),
    "version": ("V", False),
    "read-rc": ("c", False),
    "read-rc-from": ("C", True),
    "create-rc": ("n", False),
    "create-rc-to": ("N", True),
    "show-path": ("p", False),
}
_MAX_PIDS = 255
_ULONG = (1 << 64) - 1


class UsageExit(Exception):
    """Stop with this exit status after writing `stderr` (and `stdout`) text."""

    def __init__(self, status: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr or stdout)
        self.status = status
        self.stderr = stderr
        self.stdout = stdout


def _usage_error(message: str = "") -> UsageExit:
    return UsageExit(1, (f"{PROG}: {message}\n" if message else "") + USAGE)


def _fail(message: str) -> UsageExit:
    return UsageExit(1, f"{PROG}: {message}\n")


class Options(_OptionsFields):
    """What pmap's command line asked for (see `_OptionsFields`)."""

    __slots__ = ()


def _strtoul(text: str, base: int) -> tuple[int, str]:
    """C `strtoul`: the value and the unparsed rest. Leading blanks and a sign are allowed; a negative
    value wraps, and an overflow gives ULONG_MAX."""
    s = text.lstrip(" \t\n\v\f\r")
    negative = False
    if s[:1] in ("+", "-"):
        negative = s[0] == "-"
        s = s[1:]
    if base in (0, 16) and s[:2].lower() == "0x" and s[2:3] and s[2].lower() in "0123456789abcdef":
        s = s[2:]
        base = 16
    elif base == 0:
        base = 8 if s[:1] == "0" else 10
    digits = "0123456789abcdef"[:base]
    n = 0
    while n < len(s) and s[n].lower() in digits:
        n += 1
    if n == 0:
        return 0, text
    value = int(s[:n], base)
    if value > _ULONG:
        value = _ULONG
    elif negative:
        value = (-value) & _ULONG
    return value, s[n:]


def parse_range(arg: str) -> tuple[int, int]:
    """pmap's `-A low[,high]`: hex values, either end may be left out; junk is an error."""
    low, high = 0, _ULONG
    first, comma, second = arg.partition(",")
    if not comma:
        second = first
    rest1 = rest2 = ""
    if first:
        low, rest1 = _strtoul(first, 16)
    if second:
        high, rest2 = _strtoul(second, 16)
    if rest1 or rest2:
        raise _fail(f"failed to parse argument: '{arg}'")
    return low, high


def parse_pid(arg: str) -> Optional[int]:
    """pmap's PID argument: `/proc/` is dropped, base 0 (`0x1f`, `0755` octal). None means 'skip it'."""
    walk = arg[6:] if arg.startswith("/proc/") else arg
    if not walk[:1].isdigit() or not "0" <= walk[0] <= "9":
        if arg.startswith("/proc/"):
            return None
        raise _usage_error()
    value, rest = _strtoul(walk, 0)
    if value < 1 or value > 0x7FFFFFFF or rest:
        raise _usage_error()
    return value


def parse_args(args: list[str]) -> Options:
    """Read pmap's command line as GNU getopt_long does, and the rc file it names (-c, -C);
    errors raise `UsageExit`."""
    if not args:
        raise _usage_error()
    seen: list[tuple[str, Optional[str]]] = []
    notes: list[str] = []  # warnings about the rc file's lines, printed as it is read
    try:
        operands = _getopt(args, seen)
        return _options(seen, operands, notes)
    except UsageExit as exc:
        exc.stderr = _warnings(seen) + "".join(notes) + exc.stderr
        raise


def _getopt(args: list[str], seen: list[tuple[str, Optional[str]]]) -> list[str]:
    """Options go to `seen` in order (acted on as they come); returns the operands. With
    POSIXLY_CORRECT set, as glibc's getopt, options end at the first operand."""
    operands: list[str] = []
    in_order = "POSIXLY_CORRECT" in os.environ
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return operands + args[i:]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [name] if name in _LONG else [n for n in _LONG if n.startswith(name)]
            if not matches:
                raise _usage_error(f"unrecognized option '{arg}'")
            if len(matches) > 1:
                listed = "".join(f" '--{m}'" for m in matches)
                raise _usage_error(f"option '{arg}' is ambiguous; possibilities:{listed}")
            letter, takes = _LONG[matches[0]]
            if takes and not eq:
                if i >= len(args):
                    raise _usage_error(f"option '--{matches[0]}' requires an argument")
                value = args[i]
                i += 1
            elif not takes and eq:
                raise _usage_error(f"option '--{matches[0]}' doesn't allow an argument")
            _act(letter, value if takes else None, seen)
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                letter = arg[j]
                j += 1
                at = _SHORT.find(letter)
                if letter == ":" or at < 0:  # getopt reads bytes: it names the first byte of a character
                    raise _usage_error(f"invalid option -- '{os.fsdecode(os.fsencode(letter)[:1])}'")
                if _SHORT[at + 1 : at + 2] != ":":
                    _act(letter, None, seen)
                    continue
                if j < len(arg):
                    _act(letter, arg[j:], seen)
                elif i < len(args):
                    _act(letter, args[i], seen)
                    i += 1
                else:
                    raise _usage_error(f"option requires an argument -- '{letter}'")
                break
        elif in_order:
            return operands + args[i - 1 :]
        else:
            operands.append(arg)
    return operands


def _act(letter: str, value: Optional[str], seen: list[tuple[str, Optional[str]]]) -> None:
    """What pmap's getopt loop does with one option as it comes: -h and -V stop at once, -A is checked."""
    if letter == "h":
        raise UsageExit(0, stdout=USAGE + HELP_MORE)
    if letter == "V":
        raise UsageExit(0, stdout=VERSION)
    if letter == "A":
        parse_range(value or "")
    seen.append((letter, value))


def _warnings(seen: list[tuple[str, Optional[str]]]) -> str:
    """-r only warns, once for each time it is given."""
    return "".join(f"{PROG}: option -r is ignored as SunOS compatibility\n" for letter, _ in seen if letter == "r")


def _options(seen: list[tuple[str, Optional[str]]], operands: list[str], notes: list[str]) -> Options:
    letters = [letter for letter, _ in seen]
    xs = letters.count("X")
    if sum(1 for opt in "cCdnNx" if opt in letters) + (xs > 0) > 1:
        raise _fail("options -c, -C, -d, -n, -N, -x, -X are mutually exclusive")
    rc_create = "n" in letters or "N" in letters
    if rc_create and ("q" in letters or "p" in letters):
        raise _fail("options -p, -q are mutually exclusive with -n, -N")
    if rc_create and operands:
        raise _fail("too many arguments")
    rc_file = next((value for letter, value in reversed(seen) if letter in "CN"), None)  # the last one given
    if rc_create:
        path = rc_file if "N" in letters else _default_rc()  # pmap writes it once the options are read
        return Options(create_rc=path, default_rc="n" in letters, warnings=_warnings(seen))
    if not operands:
        raise _fail("argument missing")
    columns = None
    show_path = "p" in letters
    if "c" in letters or "C" in letters:
        from .._engine.render.table import Shown
        from .rcfile import read_rc

        path = rc_file if "C" in letters else _default_rc()
        assert path is not None
        rc = read_rc(path)
        if rc is None:
            raise _fail("couldn't read the rc file" if "C" in letters else "couldn't read ~/.pmaprc")
        notes.append(rc.warnings)
        columns = Shown(only=rc.fields)
        show_path ^= rc.toggles_path
    pids = tuple(p for p in map(parse_pid, operands) if p is not None)
    if not pids or len(pids) > _MAX_PIDS:
        raise _fail("library failed pids statistics")
    rng = (0, _ULONG)
    for letter, value in seen:
        if letter == "A":
            rng = parse_range(value or "")
    fmt = "XX" if xs > 1 else "X" if xs or columns else "x" if "x" in letters else "d" if "d" in letters else "default"
    return Options(
        fmt=fmt, quiet="q" in letters, show_path=show_path, range=rng, pids=pids,
        warnings=_warnings(seen) + "".join(notes), columns=columns,
    )


def _default_rc() -> str:
    """`$HOME/.pmaprc`; pmap stops when HOME is not set."""
    from .rcfile import default_rc_path

    path = default_rc_path()
    if path is None:
        raise _fail("HOME variable undefined")
    return path
