"""pmap's Mapping column: the one function that names a mapping, for every output.

pmap shows a file's base name (its path with -p), `[ anon ]` for memory with no file (even
`[heap]` and `[vdso]`), `[ stack ]` for the anonymous mapping that holds the main stack's start,
and `[ shmid=0x... ]` for a SysV shared memory segment. Control and non-ASCII bytes in a file
name become `?`. Listings, diffs, `Mapping.name` and the reports all take their names from here.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import ge

from ..parse.run import HeaderColumns, Run
from .text import text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["Names"]

_PRINTABLE = bytes(range(0x20, 0x7F))
_CLEAN_TABLE = bytes(b if b in _PRINTABLE else ord("?") for b in range(256))


class Names:
    """pmap's Mapping column for the mappings of one process, a run at a time: a file's shown
    name is worked out once per file.

    Two names depend on the process, not only on the mapping: the stack's (`start_stack`, from
    stat) and a SysV segment's (`shm_minor`, the machine's shmem device).
    """

    def __init__(self, start_stack: int = 0, shm_minor: Optional[int] = None, show_path: bool = False) -> None:
        self.start_stack = start_stack
        self.shm_minor = shm_minor
        self.show_path = show_path
        self._shown: dict[bytes, str] = {}
        """Raw name -> shown name, for names that do not depend on the mapping (not the stack, not SysV)."""

    def one(self, run: Run, i: int) -> str:
        """The Mapping column of block i of a run."""
        return self.column(run.header_columns(), i, i + 1)[0]

    def column(self, columns: HeaderColumns, first: int, stop: int) -> list[str]:
        """The Mapping column of blocks first..stop-1 of a run."""
        raws = columns.names[first:stop]
        distinct = set(raws)
        shown = self._shown
        for raw in distinct.difference(shown):
            shown[raw] = self._file_name(raw)
        out = list(map(shown.__getitem__, raws))
        # Two names depend on the mapping: the stack's (the anonymous mapping holding its start) ...
        stack, starts = self.start_stack, columns.starts
        for i in compress(range(first, stop), map(ge, columns.ends[first:stop], repeat(stack))):
            if starts[i] <= stack and b"/" not in raws[i - first]:
                out[i - first] = "  [ stack ]"
        # ... and a SysV shared memory segment's, on the kernel's shmem device.
        if any(b"/SYSV" in raw for raw in distinct):
            _, majors, minors, inodes = columns.ids()
            for i, raw in enumerate(raws, first):
                if b"/SYSV" in raw and majors[i] == 0 and minors[i] == self.shm_minor:
                    out[i - first] = f"  [ shmid=0x{inodes[i]:x} ]"
        return out

    def _file_name(self, raw: bytes) -> str:
        if b"/" not in raw:  # no file: pmap does not show [heap], [vdso] or [anon:...] by name
            return "  [ anon ]"
        name = raw.translate(_CLEAN_TABLE)
        return text(name[name.find(b"/") :] if self.show_path else name[name.rfind(b"/") + 1 :] or b"/")
