"""Budgets on other processes: `pmap_spawn` starts the process under test, `pmap_attach` watches one."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from pytest_pmap import MiB

SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    cache = {}
    def do_GET(self):
        body = self.cache.setdefault(self.path, b"x" * 65536)  # what we budget: a cache per path
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def server(pmap_spawn):
    """An HTTP server in its own process, with a probe on it; stopped and reaped at teardown."""
    probe = pmap_spawn([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    probe.port = int(probe.process.stdout.readline())
    probe.mark()  # the baseline: the server is up and idle
    return probe


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
        return response.read()


def test_a_server_under_load_stays_within_budget(server) -> None:
    for i in range(200):
        fetch(server.port, f"/item/{i % 50}")   # 50 distinct paths: a bounded cache
    assert server.growth.uss < 16 * MiB
    assert server.peak_rss < "256MiB"
    assert not server.new_mappings(anon=True, larger_than="8MiB")


def test_attach_watches_a_process_it_does_not_own(pmap_attach) -> None:
    worker = subprocess.Popen([sys.executable, "-c", "import sys; data = sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        probe = pmap_attach(worker.pid)
        assert probe.rss > 0 and probe.uss <= probe.rss
        assert probe.shared < probe.mapped
    finally:
        worker.communicate(b"")
