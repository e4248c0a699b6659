"""Memory checks written with pytest-pmap's engine: snapshot, diff, and the numbers pmap shows.

Run: pytest examples -q   (the fixtures and markers of the pytest plugin build on these same calls)
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pytest_pmap import MiB, snapshot


def build_index(n: int) -> dict[int, str]:
    """A function under test that should hold memory in proportion to n, and no more."""
    return {i: f"value-{i}" for i in range(n)}


def test_whole_process_numbers_come_from_the_kernel() -> None:
    snap = snapshot()  # this very process, read from /proc/self/smaps
    assert snap.writeable_private < "2GiB"
    assert snap.rss <= snap.mapped
    print(snap.render("d").splitlines()[-1])  # pmap -d's summary line


def test_no_new_anonymous_mapping_over_8_mib() -> None:
    before = snapshot()
    index = build_index(10_000)
    diff = snapshot().diff(before)
    assert not diff.new_mappings(anon=True, larger_than="8MiB"), diff.render(limit=10)
    assert len(index) == 10_000


def test_a_big_buffer_shows_up_where_expected() -> None:
    before = snapshot()
    buffer = bytearray(32 * MiB)  # a fresh anonymous mapping, touched page by page below
    buffer[:: 4096] = b"x" * len(buffer[:: 4096])
    diff = snapshot().diff(before)
    assert diff.growth.rss >= "30MiB"
    (big,) = diff.new_mappings(anon=True, larger_than="16MiB")
    assert big.new >= 32 * MiB
    del buffer


@pytest.fixture
def server() -> subprocess.Popen[bytes]:
    """A child process under test: Python's HTTP server on a free port."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    yield proc
    proc.terminate()
    proc.wait(5)


def test_a_child_process_stays_small(server: subprocess.Popen[bytes]) -> None:
    snap = snapshot(server.pid)
    assert snap.uss < "64MiB", snap.render("x")
    assert snap.shared < "16MiB"
