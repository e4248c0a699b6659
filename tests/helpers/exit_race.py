"""A process with N separate mappings that forks copies of itself, each to exit (or to start a
new program) when told.

Usage: exit_race.py N. Keeps one child forked in advance, waiting, and prints its PID (the first
time after "ready "). For each line "DELAY_US" read from stdin it lets that child go (it sleeps
DELAY_US microseconds, then exits; with "exec DELAY_US" it runs `sleep 600` instead, and with
"thread DELAY_US" its main thread exits while another thread runs on), forks the
next one and prints the next one's PID: the reader starts reading the child it let go at once,
without waiting for an answer. A line "reap" kills and waits for the children let go so far (until
then those that have exited stay zombies with the start time they had, the case a re-check of the
start time cannot see) and prints "reaped".
"""

import ctypes
import mmap
import os
import signal
import sys
import time

n = int(sys.argv[1])
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, n * page, 3, 0x22, -1, 0)
# Left untouched: the mappings hold no pages, so forking and exiting stay cheap (a few ms each).
for i in range(0, n, 2):
    if libc.mprotect(base + i * page, page, 1) != 0:
        sys.exit(f"mprotect failed at page {i}: errno {ctypes.get_errno()}")
SLEEP = os.path.realpath("/bin/sleep")


def fork_one() -> tuple[int, int]:
    """A child waiting for its orders on a pipe: (its PID, the pipe's end to write them to)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        *how, delay = (os.read(r, 64) or b"0").split()
        if how == [b"thread"]:  # a thread that runs on when the main thread exits
            import threading

            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        time.sleep(int(delay) / 1e6)
        if how == [b"exec"]:
            os.execv(SLEEP, ["sleep", "600"])
        if how == [b"thread"]:
            libc.pthread_exit(None)
        os._exit(0)
    os.close(r)
    return pid, w


waiting = fork_one()
print("ready", waiting[0], flush=True)  # the waiting child's PID: its map is every child's map
let_go: list[int] = []
for line in sys.stdin:
    if line.strip() == "reap":
        for child in let_go:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        let_go.clear()
        print("reaped", flush=True)
        continue
    pid, w = waiting
    os.write(w, line.strip().encode())
    os.close(w)
    let_go.append(pid)
    waiting = fork_one()
    print(waiting[0], flush=True)
for child in [waiting[0], *let_go]:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
