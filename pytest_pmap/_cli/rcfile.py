"""pmap's rc files: `-n` / `-N FILE` write the template, `-c` / `-C FILE` read one (which columns
the -X table shows, and whether ShowPath turns -p over), as procps-ng pmap 4.0.2 does, warnings
and all. The default rc file is `$HOME/.pmaprc`, the file the real pmap reads.
"""

from __future__ import annotations

import os
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional

    class _RcFields(NamedTuple):
        fields: frozenset[str]
        """The columns it enables (`Perm`, `Rss`, `VmFlags`, `Mapping`, ...): only these and Address show."""
        toggles_path: bool
        """True when it has ShowPath an odd number of times: each one turns -p over."""
        warnings: str
        """pmap's warnings about its lines, for stderr (`pmap: syntax error found in the config - line 3`)."""
else:  # the command imports neither `typing` nor `dataclasses` (see _engine/__init__.py)
    _RcFields = namedtuple("_RcFields", "fields toggles_path warnings")

__all__ = ["TEMPLATE", "RcFile", "create_rc", "default_rc_path", "read_rc"]

#: What `pmap -n` writes, byte for byte.
TEMPLATE = (
    "# pmap's Config File\n\n# All the entries are case sensitive.\n# Unsupported entries are ignored!\n\n"
    "[Fields Display]\n\n# To enable a field uncomment its entry\n\n"
    + "".join(f"#{name}\n" for name in (
        "Perm", "Offset", "Device", "Inode", "Size", "Rss", "Pss", "Shared_Clean", "Shared_Dirty",
        "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "AnonHugePages", "Swap",
        "KernelPageSize", "MMUPageSize", "Locked", "VmFlags", "Mapping"))
    + "\n\n[Mapping]\n\n# to show paths in the mapping column uncomment the following line\n#ShowPath\n\n"
)
_LINE = 1024
"""pmap reads its rc file with `fgets` into a buffer of this many bytes and a NUL."""
_NAME = 31
"""pmap keeps at most this many bytes of a name it enables."""
_FIELDS, _MAPPING, _UNSUPPORTED, _NONE = "fields", "mapping", "unsupported", "none"


class RcFile(_RcFields):
    """What an rc file asks for (see `_RcFields`)."""

    __slots__ = ()


def default_rc_path() -> Optional[str]:
    """`$HOME/.pmaprc`; None when HOME is not set (pmap then says `HOME variable undefined`)."""
    home = os.environ.get("HOME")
    return None if home is None else f"{home}/.pmaprc"


def create_rc(path: str) -> str:
    """Write the template to a new file at `path`. Returns "" when done, "exists" when something
    that can be opened is already there, and "failed" otherwise. An existing file is never
    replaced, and a file that could not be written whole is removed."""
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError:
        pass
    else:
        return "exists"
    from .._engine.files import write_new
    from ..errors import PmapError

    if os.path.islink(path):  # pmap's fopen() follows a link to nothing and creates what it names
        if os.readlink(path).endswith("/"):  # ... but a name ending in / is a folder: fopen() refuses it
            return "failed"
        path = os.path.realpath(path)
    try:
        write_new(path, TEMPLATE.encode())
    except PmapError:
        return "failed"
    return ""


def read_rc(path: str) -> Optional[RcFile]:
    """The rc file at `path`, read line by line as pmap reads it; None when it cannot be opened.
    A folder opens and reads as an empty file, as it does for pmap."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:  # a folder (EISDIR): pmap's fgets() finds nothing either
        pass
    finally:
        os.close(fd)
    return _parse(b"".join(chunks))


def _fgets(data: bytes) -> list[bytes]:
    """The lines C `fgets` returns with a 1025-byte buffer: each up to and with its newline, or
    1024 bytes of a longer one (the next call goes on with the rest)."""
    lines = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + _LINE)
        stop = nl + 1 if nl >= 0 else min(pos + _LINE, len(data))
        lines.append(data[pos:stop])
        pos = stop
    return lines


def _parse(data: bytes) -> RcFile:
    fields: set[str] = set()
    toggles = False
    warnings: list[str] = []
    section = _NONE
    pieces = iter(_fgets(data))
    number = 0

    def warn(what: str) -> None:
        warnings.append(f"pmap: {what} - line {number}\n")

    for piece in pieces:
        number += 1
        line = piece.split(b"\0", 1)[0]  # a C string ends at its first NUL
        if line.endswith(b"\n"):
            line = line[:-1]
        elif len(line) == _LINE:  # no newline in 1024 bytes: the rest of the line is skipped
            warn("config line too long")
            for rest in pieces:
                tail = rest.split(b"\0", 1)[0]
                if not tail or tail.endswith(b"\n"):
                    break
        line = line.lstrip(b" \t")
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"["):
            if line.startswith(b"[Fields Display]"):
                line, section = line[len(b"[Fields Display]"):], _FIELDS
            elif line.startswith(b"[Mapping]"):
                line, section = line[len(b"[Mapping]"):], _MAPPING
            else:
                close = line.find(b"]")
                if close >= 0:
                    section = _UNSUPPORTED
                    warn("unsupported section found in the config")
                    line = line[close + 1 :]
                else:
                    warn("syntax error found in the config")
                    line = b""
            line = line.lstrip(b" \t")
            if not line or line.startswith(b"#"):
                continue
            warn("syntax error found in the config")  # something after the section's name
        words = [word for word in line.replace(b"\t", b" ").split(b" ") if word]  # strtok(" \t")
        if section in (_FIELDS, _MAPPING):
            if not words:
                continue
            if len(words) > 1 and not words[1].startswith(b"#"):
                warn("syntax error found in the config")
            token = words[0]
            if section == _FIELDS:
                fields.add(token[:_NAME].decode("utf-8", "surrogateescape"))
            elif token == b"ShowPath":
                toggles = not toggles
        elif section == _NONE:
            warn("syntax error found in the config")
    return RcFile(frozenset(fields), toggles, "".join(warnings))
