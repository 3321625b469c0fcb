"""A fault-injecting HTTP proxy (aiohttp, on 127.0.0.1) in front of a real inference server.

The real server (``enrich serve``) never throttles or fails on demand, so this proxy does,
deterministically, before forwarding everything else unchanged:

* ``throttle``: request numbers (1-based, in arrival order) answered 429 with
  ``Retry-After: 1``; ``unavailable``: request numbers answered 503;
* ``marker``: a request whose input holds a text containing this word is answered 400 in
  the remote's own error shape (Elasticsearch's envelope on ``/_inference``, OpenAI's on
  ``/v1``), naming the word, as a server that refuses one input refuses the whole request;
* ``overload_marker``: a request whose input contains this word is always answered 503
  (a remote that never recovers);
* ``delay_s``: added latency before each request is forwarded (the benchmark's remote);
* ``cache``: answer a request whose body was answered before with that answer, after
  ``delay_s``, without asking the server (the benchmark's remote, so that what it measures
  is the client against a latency, not the server's model time).

It records every request's arrival time (``arrivals``, monotonic seconds), so tests count
requests a minute where the remote would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Collection

import aiohttp
from aiohttp import web

HOP_HEADERS = ("host", "content-length", "transfer-encoding", "connection", "accept-encoding")


def refusal(path: str, reason: str) -> dict:
    """A 400 body as the remote would send it."""
    if path.startswith("/v1/"):
        return {"error": {"message": reason, "type": "invalid_request_error", "param": "input", "code": None}}
    cause = {"type": "status_exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": 400}


class RemoteFaultProxy:
    def __init__(self, upstream: str, *, throttle: Collection[int] = (), unavailable: Collection[int] = (),
                 marker: str | None = None, overload_marker: str | None = None,
                 delay_s: float = 0.0, cache: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.throttle = set(throttle)
        self.unavailable = set(unavailable)
        self.marker = marker
        self.overload_marker = overload_marker
        self.delay_s = delay_s
        self.cache: dict[bytes, tuple[int, bytes]] | None = {} if cache else None
        self.arrivals: list[float] = []
        self.statuses: list[int] = []
        self.inputs: list[list[str]] = []  # each request's texts, in arrival order
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""

    def __enter__(self) -> "RemoteFaultProxy":
        self._thread.start()
        self._started.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def reset(self, **changes) -> None:
        """Forget what was recorded; ``changes`` replace fault settings (between tests)."""
        self.arrivals.clear()
        self.statuses.clear()
        self.inputs.clear()
        for name, value in changes.items():
            setattr(self, name, set(value) if name in ("throttle", "unavailable") else value)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        # A fresh connection per request: a kept-alive one the server closed meanwhile would
        # fail the forward ("Can not write request body"), a fault nobody asked for.
        self._session = self._loop.run_until_complete(_fresh_connection_session())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._session.close())

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        number = len(self.arrivals)
        body = await request.read()
        texts = _texts(body)
        self.inputs.append(texts)
        if number in self.throttle:
            return self._answer(429, {"error": "injected: too many requests"}, {"Retry-After": "1"})
        if number in self.unavailable or (self.overload_marker and any(self.overload_marker in t for t in texts)):
            return self._answer(503, {"error": "injected: unavailable"})
        if self.marker and any(self.marker in text for text in texts):
            return self._answer(400, refusal(request.path, f"input contains the refused word [{self.marker}]"))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.cache is not None and body in self.cache:
            status, payload = self.cache[body]
            self.statuses.append(status)
            return web.Response(status=status, body=payload, content_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers) as answer:
            payload = await answer.read()
            self.statuses.append(answer.status)
            if self.cache is not None and answer.status == 200:
                self.cache[body] = (answer.status, payload)
            return web.Response(status=answer.status, body=payload,
                                headers={"Content-Type": answer.headers.get("Content-Type", "application/json")})

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> web.Response:
        self.statuses.append(status)
        return web.json_response(body, status=status, headers=headers)


async def _fresh_connection_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


def _texts(body: bytes) -> list[str]:
    try:
        value = json.loads(body).get("input", [])
    except (ValueError, AttributeError):
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
