"""A small pre-forking HTTP server, the shape of gunicorn or a classic Apache: the master loads a
table every request reads, binds the socket, then forks WORKERS workers that accept on it.

    python examples/trees/server.py [WORKERS]

It prints its port once the workers are started, and stops (with its workers) on SIGTERM. The
table is shared copy-on-write: summing the workers' RSS counts it once per process; the tree's
`unique` counts it once.
"""

from __future__ import annotations

import http.server
import os
import signal
import sys

TABLE = bytes(range(256)) * (64 << 10)  # 16 MiB, built before the fork: every worker shares these pages
CACHE: dict[str, bytes] = {}  # each worker's own, filled as it serves: what the budget watches


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        offset = hash(self.path) % (len(TABLE) - 65536)
        body = CACHE.setdefault(self.path, TABLE[offset : offset + 65536])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)  # bound and listening before the fork
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            server.serve_forever()
            os._exit(0)
        children.append(pid)

    def stop(*_: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)
        for _ in children:
            os.wait()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(server.server_address[1], flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
