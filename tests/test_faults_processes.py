"""Faults of the second round on live processes: what is true of a process that exits, starts a
new program or is a kernel thread, and what becomes of the processes a test starts. See
docs/faults.md, "Round two: truth and processes"."""

from __future__ import annotations

import os
import random

from conftest import Forks

from pytest_pmap import snapshot


def test_a_process_that_starts_a_new_program_while_it_is_read_gives_one_whole_map(forks: Forks) -> None:
    # The kernel ends a read of the old program's map early when execve lets go of it, and a read
    # started before execve can carry the old program's name over the new one's map. The new
    # program's map grows as it starts (the loader maps its libraries): any of its states is true.
    python = snapshot(forks.waiting)
    chance = random.Random(15)
    wrong: list[str] = []
    for i in range(300):
        pid = forks.go(f"exec {chance.randrange(8_000)}")
        snap = snapshot(pid, detail=i % 4 != 0)  # never ProcessGone: the process lives on
        comm = b"python" if len(snap.mappings) > 1000 else b"sleep"
        whole = snap.mappings[-1].start == python.mappings[-1].start  # [vsyscall]: a read cut short loses it
        if not whole or snap.comm != comm or (comm == b"python" and len(snap.mappings) < len(python.mappings) - 8):
            wrong.append(f"PID {pid} ({snap.comm!r}): {len(snap.mappings)} mappings, the last {snap.mappings[-1].name}")
    assert not wrong, f"{len(wrong)} maps of 300 were cut short or named for the other program: {wrong[:5]}"
    assert os.path.exists(f"/proc/{pid}")
