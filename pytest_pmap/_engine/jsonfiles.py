"""Reading the files pytest-pmap writes (snapshots, results, baselines, histories): bounded, checked
as they come, every failure one line naming the file. They are written by `files`.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ..errors import PmapError

__all__ = ["LAST_TIME", "MAX_READ", "JSONTooDeep", "decode_json", "is_time", "read_json"]

#: The largest file `read_json` reads. A snapshot takes about 740 bytes per mapping (a
#: 100,000-mapping snapshot is about 74 MB), so this holds a snapshot of 1.4 million mappings,
#: twenty times the kernel's default limit of 65,530 per process; a results file takes under
#: 1 KB per test. A bigger file, or a stream that does not end (`/dev/zero`), is refused rather
#: than read into memory.
MAX_READ = 1 << 30
#: The latest time our files may hold (seconds since the epoch): the year 5138, which `time.gmtime`,
#: `time.strftime` and `datetime` still show; a later one (`2**70`, `1e300`) cannot be shown at all.
LAST_TIME = 1e11
#: A JSON document starts with one of these (after blanks); anything else is refused at once.
_JSON_START = b'{["-0123456789tfn'

class JSONTooDeep(ValueError):
    """A JSON document nested deeper than Python's decoder goes (about 1,000 levels; our files nest 4 deep)."""


def decode_json(raw: bytes | bytearray | str) -> Any:
    """The JSON document in `raw`; what cannot be read raises `ValueError`, `JSONTooDeep` for what
    Python's decoder refuses with `RecursionError`. Every reader of our files decodes here."""
    import json

    try:
        return json.loads(raw)
    except RecursionError:
        raise JSONTooDeep("its JSON is nested too deeply to read") from None


def is_time(value: object) -> bool:
    """True for a time our files may hold, which every reader can show as a date: a number (not a
    bool) from 0 to `LAST_TIME`; NaN, infinities and `2**70` are not."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= LAST_TIME


def read_json(path: str | os.PathLike[str], what: str, error: type[PmapError] = PmapError) -> Any:
    """The JSON document in the file at `path`; any failure raises `error` naming it as `what`
    (`baseline file 'base.json'`). Files over `MAX_READ`, streams that do not end, and documents
    nested deeper than Python can decode are refused."""
    raw = _read_bounded(path, what, error)
    if not raw.strip():
        raise error(f"{what} is empty")
    try:
        return decode_json(raw)
    except JSONTooDeep as exc:
        raise error(f"{what} is not a pytest-pmap file: {exc}") from None
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except MemoryError:
        raise error(f"{what} is too large to read in the memory this process has") from None


def _read_bounded(path: str | os.PathLike[str], what: str, error: type[PmapError]) -> bytes | bytearray:
    """The file's bytes, at most `MAX_READ` of them; a stream is refused as soon as it cannot be JSON."""
    too_big = f"more than the {MAX_READ:,} bytes a pytest-pmap file may be"
    try:
        with open(path, "rb", buffering=0) as f:
            info = os.fstat(f.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > 0:  # procfs and sysfs files say 0: read them as streams
                if info.st_size > MAX_READ:
                    raise error(f"{what} is {info.st_size:,} bytes, more than the {MAX_READ:,} a pytest-pmap file may be")
                raw: bytes | bytearray = f.readall()
                _check_start(raw, what, error)
            else:
                raw = bytearray()
                while len(raw) <= MAX_READ:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    if not raw.strip():
                        _check_start(chunk, what, error)
                    raw += chunk
    except FileNotFoundError:
        raise error(f"{what} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}") from None
    except MemoryError:
        raise error(f"{what} is too large to read in the memory this process has") from None
    if len(raw) > MAX_READ:
        raise error(f"{what} is {too_big}")
    return raw


def _check_start(raw: bytes | bytearray, what: str, error: type[PmapError]) -> None:
    """Refuse at once what cannot be JSON (`/dev/zero`, a binary file) rather than read all of it."""
    head = raw[:4096].lstrip(b" \t\r\n")[:1]
    if head and head[0] not in _JSON_START:
        raise error(f"{what} is not a pytest-pmap file: it does not start as JSON does ({bytes(raw[:16])!r})")
