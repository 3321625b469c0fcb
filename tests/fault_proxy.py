"""An HTTP proxy on 127.0.0.1 that fails chosen requests before forwarding the rest.

The real servers never answer 429 or 503 on demand, so this is how the tests make them: the
proxy answers the first ``failures`` requests whose path contains ``path_part`` with the
given statuses, and forwards everything else, unchanged, to the real server.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, upstream: str, path_part: str, statuses: list[int]) -> None:
        self.upstream = upstream.rstrip("/")
        self.path_part = path_part
        self.pending = list(statuses)
        self.failed: list[int] = []
        self.forwarded: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.path_part in self.path and proxy.pending:
                    status = proxy.pending.pop(0)
                    proxy.failed.append(status)
                    payload = b'{"error": "injected by FaultProxy"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                proxy.forwarded.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None,
                                                 method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, payload, upstream_headers = response.status, response.read(), response.headers
                except urllib.error.HTTPError as error:
                    status, payload, upstream_headers = error.code, error.read(), error.headers
                self.send_response(status)
                for name, value in upstream_headers.items():  # e.g. X-Elastic-Product
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
