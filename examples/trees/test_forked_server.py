"""A server with forked workers, measured as one: `pmap_spawn(..., tree=True)` and the marker's `tree=True`."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pytest_pmap import MiB

SERVER = str(Path(__file__).with_name("server.py"))


@pytest.fixture
def server(pmap_spawn):
    """The server and its 3 workers, with a probe on all four; stopped and reaped at teardown."""
    probe = pmap_spawn([sys.executable, SERVER, "3"], tree=True, stdout=subprocess.PIPE)
    probe.port = int(probe.process.stdout.readline())
    probe.mark()  # the baseline: the master and its idle workers
    return probe


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
        return response.read()


def test_the_workers_stay_within_the_budget_of_the_whole_tree(server) -> None:
    for i in range(300):
        fetch(server.port, f"/item/{i % 50}")  # 50 distinct paths: each worker's cache stays bounded
    assert len(server.snapshot().processes) == 4  # the master and its three workers
    assert server.growth.uss < 16 * MiB  # all four processes together: whichever worker served
    assert server.peak_rss < "512MiB"  # the sum of each process's peak: an upper bound


def test_the_shared_table_counts_once(server) -> None:
    tree = server.snapshot(unique=True)
    if tree.unique is None:  # pagemap and kpagecount are root's
        pytest.skip(tree.unique_note)
    # Summing RSS counts the 16 MiB table in each of the four processes; unique counts it once.
    assert tree.rss > tree.unique + 3 * 16 * MiB
    assert tree.pss <= tree.rss


@pytest.mark.pmap(tree=True, uss_growth="64MiB")
def test_a_budget_on_the_test_and_everything_it_starts(pmap_spawn) -> None:
    # The marker's budget covers this test's process and its descendants: the server it starts too.
    probe = pmap_spawn([sys.executable, SERVER, "2"], stdout=subprocess.PIPE)
    port = int(probe.process.stdout.readline())
    for i in range(20):
        fetch(port, f"/page/{i}")
