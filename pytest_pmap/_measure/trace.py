"""`--pmap-trace`: which Python lines allocated the memory a test kept, by tracemalloc.

Pure: no pytest here. `Tracer.start()` starts tracemalloc at the start of a measured call;
`Tracer.finish()` takes its snapshot, stops it (its traces cost memory: it never runs between
tests) and keeps only the top lines as `Allocations`, small text and numbers. Everything
tracemalloc sees while it runs is allocated during the call, so what it still traces at the end is
the call's net allocation.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Optional

from ..size import Size

__all__ = ["DEFAULT_DEPTH", "TOP_LINES", "Allocations", "TracedLine", "Tracer", "excluded_dirs"]

#: Frames kept per allocation when no depth is given: enough to see the test's line behind a helper.
DEFAULT_DEPTH = 8
#: Lines a result keeps.
TOP_LINES = 5
#: Packages whose allocations are the machinery's, not the test's: pytest, pluggy, xdist and us.
_MACHINERY = ("_pytest", "pytest", "pluggy", "xdist", "execnet", "pytest_pmap")


def excluded_dirs() -> tuple[str, ...]:
    """The folders of the machinery's packages that are loaded (a package not loaded allocates nothing)."""
    dirs = []
    for name in _MACHINERY:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    dirs.append(os.path.abspath(tracemalloc.__file__))
    return tuple(dirs)


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where the standard library lives (and code with no file: `<frozen abc>`, `<string>`), and
    the site-packages inside it (a virtualenv's platstdlib holds them): an allocation in the
    standard library belongs to whoever called it."""
    paths = sysconfig.get_paths()
    library = (*{os.path.abspath(paths[key]) + os.sep for key in ("stdlib", "platstdlib")}, "<")
    return library, tuple({os.path.abspath(paths[key]) + os.sep for key in ("purelib", "platlib")})


@dataclass(frozen=True)
class TracedLine:
    """One Python line and the memory it allocated that was still held when tracing stopped."""

    where: str
    """`file.py:LINE`, the file relative to the project's root when it lies inside it."""
    size: int
    """Bytes still held (negative in a comparison when the line's memory shrank)."""
    count: int
    """Blocks still held."""
    code: str = ""
    """The line's source text, stripped ("" when the file cannot be read)."""

    def row(self) -> str:
        """`  1.0 MiB    1 block   tests/test_x.py:12: CACHE.append(...)`."""
        blocks = f"{self.count} block{'s' if abs(self.count) != 1 else ''}"
        size = Size(self.size).human()
        return f"{size:>11} {blocks:>13}  {self.where}" + (f": {self.code}" if self.code else "")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"where": self.where, "size": self.size, "count": self.count, "code": self.code}

    @classmethod
    def from_json(cls, data: Any) -> TracedLine:
        """Rebuild a line from `to_json()`; raises KeyError, TypeError or ValueError on a bad shape."""
        if not isinstance(data, dict):
            raise TypeError(f"a traced line must be an object, not {data!r}")
        size, count = data["size"], data["count"]
        if isinstance(size, bool) or not isinstance(size, int) or isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"a traced line's size and count are numbers, not {size!r} and {count!r}")
        return cls(str(data["where"]), size, count, str(data.get("code") or ""))


@dataclass(frozen=True)
class Allocations:
    """What tracemalloc saw of a test: the top lines by net allocation, and the traceback of the first."""

    lines: tuple[TracedLine, ...] = ()
    """The lines that kept most, the largest first."""
    traceback: tuple[str, ...] = ()
    """Where the top line was called from, outermost first (`file.py:LINE: code`), machinery left out."""
    total: int = 0
    """Bytes tracemalloc saw held at the end, the machinery's left out."""
    overhead: int = 0
    """tracemalloc's own memory (its traces) when it stopped: part of what /proc measured."""

    def render(self, growth: Optional[int] = None, what: str = "") -> str:
        """The top lines, the top one's traceback, and how much of `growth` (bytes of `what`) tracemalloc saw."""
        if not self.lines:
            out = ["tracemalloc: no Python line kept memory allocated during the call"]
        else:
            out = ["tracemalloc: the Python lines that kept most of what they allocated:"]
            out += [f"  {line.row()}" for line in self.lines]
            if self.traceback:
                out.append(f"  {self.lines[0].where} was reached from:")
                out += [f"    {frame}" for frame in self.traceback]
        if growth is not None and growth > 0:
            label = f" ({what})" if what else ""
            saw = f"tracemalloc saw {Size(self.total).human()} of {Size(growth).human()}{label}"
            if self.total < growth:
                if self.overhead:
                    saw += f"; its own traces took {Size(self.overhead).human()}"
                saw += ": the rest is native memory or allocator overhead"
            out.append(saw)
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"lines": [line.to_json() for line in self.lines], "traceback": list(self.traceback),
                "total": self.total, "overhead": self.overhead}

    @classmethod
    def from_json(cls, data: Any) -> Allocations:
        """Rebuild from `to_json()`; raises KeyError, TypeError or ValueError on a bad shape."""
        if not isinstance(data, dict):
            raise TypeError(f"a test's trace must be an object, not {data!r}")
        total, overhead = data.get("total") or 0, data.get("overhead") or 0
        if not isinstance(total, int) or not isinstance(overhead, int):
            raise TypeError("a trace's total and overhead are numbers of bytes")
        return cls(tuple(TracedLine.from_json(line) for line in data.get("lines") or ()),
                   tuple(str(frame) for frame in data.get("traceback") or ()), total, overhead)


@dataclass
class Tracer:
    """tracemalloc around one measured call (or a series of calls): started, snapshot, stopped."""

    depth: int = DEFAULT_DEPTH
    """Frames kept per allocation (`--pmap-trace-depth`)."""
    root: str = field(default_factory=os.getcwd)
    """Files under this folder are shown relative to it."""
    top: int = TOP_LINES
    _started: bool = field(default=False, repr=False)

    def start(self) -> None:
        """Start tracing, unless something else (the user, `python -X tracemalloc`) already traces:
        then its traces are left alone and this tracer reports nothing."""
        if tracemalloc.is_tracing():
            return
        tracemalloc.start(self.depth)
        self._started = True

    def finish(self) -> Optional[Allocations]:
        """The top lines of what was allocated since `start()` and is still held; tracing stopped.
        None when this tracer did not start tracemalloc."""
        if not self._started:
            return None
        self._started = False
        try:
            snap = tracemalloc.take_snapshot()
            overhead = tracemalloc.get_tracemalloc_memory()
        finally:
            tracemalloc.stop()  # frees its traces: they must not outlive the call
        return self.summarize(snap, overhead)

    def summarize(self, snap: tracemalloc.Snapshot, overhead: int = 0) -> Allocations:
        """The top lines of `snap`, the machinery's allocations left out: those whose innermost
        frame outside the standard library is pytest's, pluggy's, xdist's or ours (a `Counter`
        pytest builds is pytest's; one the test builds is the test's)."""
        machinery, (library, packages) = excluded_dirs(), _library_dirs()
        by_line: dict[tracemalloc.Frame, list[int]] = {}  # the innermost frame -> [size, count]
        stack_of: dict[tracemalloc.Frame, tuple[int, tracemalloc.Traceback]] = {}  # its largest stack
        total = 0
        for stat in snap.statistics("traceback"):  # one pass over the traces, grouped by whole stack
            frames = stat.traceback  # oldest first
            caller = next((f for f in reversed(frames)
                           if not f.filename.startswith(library) or f.filename.startswith(packages)), frames[-1])
            if caller.filename.startswith(machinery):
                continue
            total += stat.size
            line = frames[-1]
            sums = by_line.setdefault(line, [0, 0])
            sums[0] += stat.size
            sums[1] += stat.count
            if stat.size > stack_of.get(line, (-1, frames))[0]:
                stack_of[line] = (stat.size, frames)
        ranked = sorted(by_line.items(), key=lambda item: item[1][0], reverse=True)[: self.top]
        lines = tuple(self._line(frame, size, count) for frame, (size, count) in ranked if size > 0)
        frames_text: list[str] = []
        if lines:
            for frame in stack_of[ranked[0][0]][1]:
                if frame.filename.startswith(machinery):
                    continue
                text = self._frame(frame)
                if not frames_text or frames_text[-1] != text:  # a comprehension's frame is its line's
                    frames_text.append(text)
            top = lines[0].where
            while frames_text and (frames_text[-1] == top or frames_text[-1].startswith(top + ":")):
                frames_text.pop()  # the top line itself
        return Allocations(lines, tuple(frames_text), total, overhead)

    def _frame(self, frame: tracemalloc.Frame) -> str:
        code = linecache.getline(frame.filename, frame.lineno).strip()
        return f"{self._where(frame.filename, frame.lineno)}" + (f": {code}" if code else "")

    def _line(self, frame: tracemalloc.Frame, size: int, count: int) -> TracedLine:
        code = linecache.getline(frame.filename, frame.lineno).strip()
        return TracedLine(self._where(frame.filename, frame.lineno), size, count, code)

    def _where(self, filename: str, lineno: int) -> str:
        root = self.root.rstrip(os.sep) + os.sep
        name = filename[len(root):] if filename.startswith(root) else filename
        return f"{name}:{lineno}"
