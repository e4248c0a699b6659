"""The text pieces every pmap listing shares: the header line, escaping, the mode column.

Pure functions. Output is `str`; bytes that are not UTF-8 (pmap copies some of them through
unchanged) are kept as surrogate escapes, so `pmap_bytes(text)` gives pmap's bytes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Protocol

    class Head(Protocol):
        """What a listing's header line and names need of a process (a `Snapshot` has it all)."""

        @property
        def pid(self) -> int: ...
        @property
        def raw_cmdline(self) -> bytes: ...
        @property
        def comm(self) -> bytes: ...
        @property
        def state(self) -> str: ...
        @property
        def start_stack(self) -> int: ...
        @property
        def shm_minor(self) -> Optional[int]: ...

__all__ = ["MODES", "escape", "header_line", "locale_is_utf8", "mode", "pmap_bytes", "text"]

_CMDLINE_MAX = 131071


def locale_is_utf8() -> bool:
    """True when the C library's character set is UTF-8, as it is for pmap after `setlocale(LC_ALL, "")`
    (Python sets LC_CTYPE from the environment at start-up, as pmap does)."""
    try:
        # The C module the `locale` module wraps: importing `locale` itself costs the command more
        # than a third of a millisecond, for this one call.
        from _locale import CODESET, nl_langinfo
    except ImportError:  # pragma: no cover - a Python without it
        from locale import CODESET, nl_langinfo
    try:
        utf8 = bool(nl_langinfo(CODESET) == "UTF-8")
    except (AttributeError, ValueError):
        return False
    return utf8 and not _c_locale_coerced()


def _c_locale_coerced() -> bool:
    """True when CPython switched a C locale to UTF-8 at start-up (PEP 538), so that pmap, given
    the same environment, would run in the C locale.

    The locale in effect is then one of CPython's targets (`C.UTF-8`, `C.utf8`, `UTF-8`) while the
    environment the process was started with (`/proc/self/environ`, which later changes to
    `os.environ` leave alone) asked for another: its LC_ALL, else LC_CTYPE, else LANG, as the C
    library reads them, named the C locale, none, or one that does not exist.
    """
    try:
        from _locale import LC_CTYPE, setlocale

        now = setlocale(LC_CTYPE)  # asks, changes nothing
    except (ImportError, ValueError, OSError):  # pragma: no cover - a Python without it
        return False
    if now not in ("C.UTF-8", "C.utf8", "UTF-8"):
        return False
    if not _ASKED:  # the environment a process started with never changes: read it once
        _ASKED.append(_locale_asked())
    asked = _ASKED[0]
    return asked is not False and asked != now.encode()


_ASKED: list[Optional[bytes] | bool] = []
"""`_locale_asked()`, once read."""


def _locale_asked() -> Optional[bytes] | bool:
    """The LC_CTYPE locale the environment this process started with names (LC_ALL, else
    LC_CTYPE, else LANG, as the C library reads them; None for none), or False when it cannot be
    read."""
    try:
        with open("/proc/self/environ", "rb") as f:
            started = f.read().split(b"\0")
    except OSError:
        return False
    values: dict[bytes, bytes] = {}
    for item in started:
        name, sep, value = item.partition(b"=")
        if sep and name in (b"LC_ALL", b"LC_CTYPE", b"LANG"):
            values.setdefault(name, value)  # the first one is the one getenv() finds
    return values.get(b"LC_ALL") or values.get(b"LC_CTYPE") or values.get(b"LANG")


def text(data: bytes) -> str:
    """Bytes as text, the way every output of ours keeps them: undecodable bytes as surrogate escapes."""
    return data.decode("utf-8", "surrogateescape")


def pmap_bytes(text: str) -> bytes:
    """The bytes pmap writes for text from this module (surrogate escapes become the raw bytes again)."""
    return text.encode("utf-8", "surrogateescape")


def escape(data: bytes, utf8: bool) -> str:
    """libproc2's `escape_str`: control bytes become `?` (UTF-8) or `.` (ASCII), other non-ASCII `?`."""
    out = bytearray()
    i, n = 0, len(data)
    if utf8:
        while i < n:
            c = data[i]
            if c < 0x80:
                out.append(0x3F if c < 0x20 or c == 0x7F else c)
                i += 1
                continue
            length = 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
            if not length or i + length > n:
                break  # from here on, the ASCII rule
            out += data[i : i + length]
            i += length
    for c in data[i:]:
        out.append(0x2E if c < 0x20 or c == 0x7F else 0x3F if c >= 0x80 else c)
    return text(bytes(out))


def header_line(snap: Head, utf8: Optional[bool] = None) -> str:
    """`"<pid>:   <command line>"`, the first line of every pmap listing."""
    utf8 = locale_is_utf8() if utf8 is None else utf8
    data = snap.raw_cmdline[:_CMDLINE_MAX]
    if data:
        text = data.rstrip(b"\0").replace(b"\0", b" ").replace(b"\n", b" ")
        if data[-1:] in (b"\n", b" ") and text.endswith(b" "):
            text = text[:-1]
        command = escape(text, utf8)
    else:
        command = f"[{escape(snap.comm, utf8)}]"
        if snap.state == "Z":
            command += " <defunct>"
    return f"{snap.pid}:   {command or '?'}"


def mode(perms: str) -> str:
    """pmap's five-letter mode: `rw-p` becomes `rw---`, `rw-s` becomes `rw-s-`."""
    return perms[:3] + ("s" if perms[3] == "s" else "-") + "-"


#: pmap's mode of every permission string the kernel writes.
MODES = {perms: mode(perms) for perms in (f"{r}{w}{x}{s}" for r in "-r" for w in "-w" for x in "-x" for s in "-sp")}
