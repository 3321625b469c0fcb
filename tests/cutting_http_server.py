"""A static file server on 127.0.0.1 that cuts chosen responses off mid-body.

A real network drops connections at random; this server does it on demand so that tests
can read through fsspec's ``http://`` filesystem (aiohttp) and meet a real
``ClientPayloadError``. It serves HEAD and GET with ``Range`` requests (fsspec's
HTTPFileSystem needs both to read a file in blocks) and cuts the first ``cuts`` GET
responses whose range starts at or after byte ``cut_from``: it promises the whole range in
``Content-Length``, sends half of it and closes the connection.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class CuttingHttpServer:
    def __init__(self, root: Path, cuts: int = 0, cut_from: int = 0) -> None:
        self.root = root
        self.cuts_left = cuts
        self.cut_from = cut_from
        self.cut_at: list[int] = []  # file offsets where responses were cut
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start, stop = 0, len(data)
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match[1])
                    stop = min(len(data), int(match[2]) + 1) if match[2] else len(data)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(stop - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if not body:
                    return
                if server._take_cut(start):
                    half = start + (stop - start) // 2
                    server.cut_at.append(half)
                    self.wfile.write(data[start:half])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the peer sees the body end early
                    return
                self.wfile.write(data[start:stop])

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take_cut(self, start: int) -> bool:
        with self._lock:
            if self.cuts_left and start >= self.cut_from:
                self.cuts_left -= 1
                return True
            return False

    def __enter__(self) -> "CuttingHttpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """Clients that stop reading early (fsspec probes a URL, then drops it) are no error."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass
