"""A process tree for the tree tests: a master that touches MIB MiB of anonymous memory, then forks
WORKERS workers that share it copy-on-write, and whatever the options add:

  --grandchild     the first worker forks a child of its own
  --zombie         a child that exits at once and is never reaped (a zombie in the tree)
  --thread-child   a child forked by one of the master's threads (listed in that thread's children file)
  --daemon         a grandchild that leaves the tree: its parent exits, so it is reparented (to init,
                   or to the nearest subreaper); it outlives the master, as a daemon does

It prints one line of JSON with the PIDs ({"master": ..., "workers": [...], ...}), then does each
command read from stdin and answers "ok" with the PIDs again: `grow N` (worker 0 touches N MiB
more), `spike N` (the last worker touches N MiB and frees them), `fork` (one more worker), `exit`.
Every process but the daemon exits when the master does.
"""

from __future__ import annotations

import json
import mmap
import os
import select
import sys
import threading
import time
from pathlib import Path

LIFELINE_R, LIFELINE_W = os.pipe()  # every child waits on it: end of file means the master is gone
MASTER = os.getpid()


def touch(mib: int) -> mmap.mmap:
    region = mmap.mmap(-1, max(mib, 1) << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(0, mib << 20, mmap.PAGESIZE):
        region[i] = 1
    return region


def child(body: object = None) -> int:
    """Fork; the child closes the master's end of the lifeline, runs `body` and then waits until
    the master is gone. Returns the child's PID (in the parent)."""
    pid = os.fork()
    if pid == 0:
        if os.getppid() == MASTER:
            os.close(LIFELINE_W)  # only the master holds it open
        if callable(body):
            body()
        os.read(LIFELINE_R, 1)
        os._exit(0)
    return pid


def worker(commands: int, done: int, grandchild: bool) -> None:
    """For each order read from `commands` (`g` or `s`, then a byte: N), touch N MiB and keep them
    (`g`) or free them at once (`s`, a spike of the peak), and answer on `done`."""
    held = []
    if grandchild:
        child()
    while True:
        ready, _, _ = select.select([commands, LIFELINE_R], [], [])
        if LIFELINE_R in ready:  # the master is gone
            os._exit(0)
        order = os.read(commands, 2)
        region = touch(order[1])
        if order[:1] == b"s":
            region.close()
        else:
            held.append(region)
        os.write(done, b"k")


def main() -> None:
    mib, count = int(sys.argv[1]), int(sys.argv[2])
    options = set(sys.argv[3:])
    shared = touch(mib)
    pids: dict[str, object] = {"master": os.getpid()}
    workers: list[int] = []
    pipes: list[tuple[int, int]] = []

    def start(grandchild: bool = False) -> None:
        commands_r, commands_w = os.pipe()
        done_r, done_w = os.pipe()
        workers.append(child(lambda: worker(commands_r, done_w, grandchild)))
        pipes.append((commands_w, done_r))

    for i in range(count):
        start(grandchild=i == 0 and "--grandchild" in options)
    pids["workers"] = workers
    if "--zombie" in options:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        stat = Path(f"/proc/{pid}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie before we say so
            time.sleep(0.001)
        pids["zombie"] = pid
    if "--thread-child" in options:
        found: list[int] = []

        def fork_and_stay() -> None:
            found.append(child())
            time.sleep(3600)  # the thread lives on, so its children file lists the child

        threading.Thread(target=fork_and_stay, daemon=True).start()
        while not found:
            time.sleep(0.01)
        pids["thread_child"] = found[0]
    if "--daemon" in options:
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.close(LIFELINE_W)  # the daemon must not keep the others alive
            if os.fork() == 0:
                os.setsid()
                os.write(w, str(os.getpid()).encode())
                time.sleep(3600)
                os._exit(0)
            os._exit(0)  # the daemon's parent exits at once: the daemon is an orphan
        pids["daemon"] = int(os.read(r, 32))
        os.waitpid(middle, 0)
    if "--grandchild" in options:
        first = workers[0]
        while "grandchild" not in pids:
            with open(f"/proc/{first}/task/{first}/children") as f:
                kids = f.read().split()
            if kids:
                pids["grandchild"] = int(kids[0])
            else:
                time.sleep(0.01)
    print(json.dumps(pids), flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command in ("grow", "spike"):
            commands_w, done_r = pipes[0] if command == "grow" else pipes[-1]
            os.write(commands_w, command[:1].encode() + bytes([int(arg)]))
            os.read(done_r, 1)
        elif command == "fork":
            start()
        elif command == "exit":
            break
        print("ok", json.dumps(pids), flush=True)
    del shared


if __name__ == "__main__":
    main()
