"""A live process tree for the tests: tests/helpers/forked_tree.py, and a fixture that starts it and
stops every process of it at the end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HELPERS

__all__ = ["Tree", "running", "tree_of"]


class Tree:
    """tests/helpers/forked_tree.py running: its PIDs, commands through its stdin; `stop()` ends every
    process it started, the daemon included."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HELPERS / "forked_tree.py"), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.pids: dict[str, Any] = json.loads(self.proc.stdout.readline())
        self.master: int = self.pids["master"]

    def ask(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer.startswith(b"ok "), answer
        self.pids = json.loads(answer[3:])

    def everyone(self) -> set[int]:
        """Every live process of the tree (not the zombie, not the daemon, which left it)."""
        found = {self.master, *self.pids["workers"]}
        found |= {self.pids[k] for k in ("grandchild", "thread_child") if k in self.pids}
        return found

    def stop(self) -> None:
        if "daemon" in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pids["daemon"], signal.SIGKILL)
        self.proc.kill()  # the others wait on a pipe from the master: they exit with it
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        deadline = time.monotonic() + 10
        while any(map(running, self.everyone())) and time.monotonic() < deadline:
            time.sleep(0.02)


def running(pid: int) -> bool:
    """True while process `pid` exists and has not exited (a zombie waits only to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def tree_of() -> Iterator[Any]:
    started: list[Tree] = []

    def start(*args: str) -> Tree:
        started.append(Tree(*args))
        return started[-1]

    yield start
    for tree in started:
        tree.stop()
