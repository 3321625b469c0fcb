"""An HTTP proxy on 127.0.0.1 that fails chosen requests (or chosen bulk items) before
forwarding the rest.

The real servers never answer 429 or 503 on demand, so this is how the tests make them:

* ``statuses``: the proxy answers the first requests whose path contains ``path_part`` with
  these statuses, one each, and forwards everything else, unchanged, to the real server.
* ``item_faults``: per document id, the statuses its bulk items get on their first attempts
  (e.g. ``{"doc-2": [429], "doc-5": [400]}``). Those items are taken out of the bulk request,
  the rest is forwarded for real, and the answer is the real server's items with the injected
  ones put back at their positions, as a cluster answers when some shards are overloaded
  (429) or some documents are bad (400). An injected error's reason names its document, so
  a test can tell whether every error reached the document it belongs to. The status
  ``NO_ANSWER`` leaves the item out of the answer altogether (a server or proxy bug).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping, Sequence

NO_ANSWER = 0

INJECTED_ERRORS = {
    429: "es_rejected_execution_exception",
    400: "document_parsing_exception",
}


def injected_item(op_type: str, action: dict, status: int) -> dict:
    """A bulk response item for a document the proxy refused, with an error naming it."""
    doc_id = action.get("_id")
    error = {"type": INJECTED_ERRORS.get(status, "injected_exception"),
             "reason": f"injected by FaultProxy: status {status} for document [{doc_id}]"}
    return {op_type: {"_index": action.get("_index"), "_id": doc_id, "status": status, "error": error}}


def is_bulk_request(path: str) -> bool:
    """``/_bulk`` or ``/INDEX/_bulk`` (an index may have ``_bulk`` inside its name)."""
    return urllib.parse.urlsplit(path).path.rstrip("/").endswith("/_bulk")


def bulk_operations(body: bytes) -> list[tuple[str, dict, list[bytes]]]:
    """(op_type, action metadata, its NDJSON lines) per operation of a bulk request body."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    operations, position = [], 0
    while position < len(lines):
        header = json.loads(lines[position])
        ((op_type, action),) = header.items()
        size = 1 if op_type == "delete" else 2
        operations.append((op_type, action, lines[position:position + size]))
        position += size
    return operations


class FaultProxy:
    def __init__(self, upstream: str, path_part: str = "_bulk", statuses: Sequence[int] = (),
                 item_faults: Mapping[str, Sequence[int]] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.path_part = path_part
        self.pending = list(statuses)
        self.item_faults = {doc_id: list(faults) for doc_id, faults in (item_faults or {}).items()}
        self.failed: list[int] = []
        self.injected: list[tuple[str, int]] = []  # (document id, status), in order
        self.forwarded: list[str] = []
        self.authorizations: list[str | None] = []  # each request's Authorization header
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.authorizations.append(self.headers.get("Authorization"))
                with proxy._lock:
                    status = proxy.pending.pop(0) if proxy.path_part in self.path and proxy.pending else None
                if status is not None:
                    proxy.failed.append(status)
                    self._answer(status, b'{"error": "injected by FaultProxy"}',
                                 {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"})
                elif proxy.item_faults and is_bulk_request(self.path):
                    self._bulk_with_item_faults(body)
                else:
                    self._answer(*self._forward(body))

            def _forward(self, body: bytes) -> tuple[int, bytes, dict]:
                proxy.forwarded.append(self.path)
                skip = ("host", "content-length", "accept-encoding")  # keep answers readable
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None,
                                                 method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        return response.status, response.read(), dict(response.headers.items())
                except urllib.error.HTTPError as error:
                    return error.code, error.read(), dict(error.headers.items())

            def _bulk_with_item_faults(self, body: bytes) -> None:
                operations = bulk_operations(body)
                injected: dict[int, dict | None] = {}  # position -> its item (None: no answer)
                with proxy._lock:
                    for position, (op_type, action, _) in enumerate(operations):
                        faults = proxy.item_faults.get(str(action.get("_id")))
                        if faults:
                            status = faults.pop(0)
                            proxy.injected.append((str(action.get("_id")), status))
                            injected[position] = None if status == NO_ANSWER else injected_item(op_type, action, status)
                kept = [lines for position, (_, _, lines) in enumerate(operations) if position not in injected]
                if kept:
                    status, payload, headers = self._forward(b"\n".join(line for op in kept for line in op) + b"\n")
                    if status != 200:  # a whole-request failure: pass it on as it is
                        self._answer(status, payload, headers)
                        return
                    answer = json.loads(payload)
                else:
                    headers = {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}
                    answer = {"took": 0, "errors": False, "items": []}
                forwarded_items = iter(answer["items"])
                items = [injected[p] if p in injected else next(forwarded_items) for p in range(len(operations))]
                answer["items"] = [item for item in items if item is not None]
                answer["errors"] = answer["errors"] or bool(injected)
                self._answer(200, json.dumps(answer).encode(), headers)

            def _answer(self, status: int, payload: bytes, headers: dict) -> None:
                self.send_response(status)
                for name, value in headers.items():  # e.g. X-Elastic-Product
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
