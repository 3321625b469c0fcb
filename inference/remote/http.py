"""The HTTP side of remote services: one client per remote service and process.

A ``RemoteClient`` owns an event loop in a daemon thread, an aiohttp session, the bound on
requests in flight and the rate limiter; every caller in the process (Beam DoFn threads,
``enrich serve`` requests, ``enrich infer``) hands it coroutines through ``submit``, so the
limits hold for the whole process, not per caller. ``post_json`` sends one request and
retries what may pass on a second try (429, 5xx, timeouts, connection failures) with
exponential backoff and full jitter, waiting what ``Retry-After`` asks when the server says;
it returns any other answer (2xx, or a 4xx for the caller to judge) and raises
``RemoteServiceError`` once the retries are spent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import ssl
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Coroutine, Mapping

from inference_enrich.inference.errors import RemoteServiceError
from inference_enrich.inference.remote.rate_limit import RateLimiter

if TYPE_CHECKING:  # imported by the methods that talk to a service: endpoints load without it
    import aiohttp


@dataclass(frozen=True)
class ClientSettings:
    """How one remote service is called (from the endpoint's ``service_settings``)."""

    requests_per_minute: int
    max_concurrent_requests: int
    timeout_s: float
    max_retries: int
    initial_backoff_s: float
    max_backoff_s: float
    ca_certs: str | None = None  # a PEM file of CAs to trust (else the system's)
    verify_certs: bool = True

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.verify_certs:
            return False
        return ssl.create_default_context(cafile=self.ca_certs) if self.ca_certs else True

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0-based): full jitter over an exponential cap."""
        return random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2 ** retry))


@dataclass
class CallStats:
    """What the requests of one call did, for the caller's metrics (Beam metrics must be
    updated from the DoFn's own thread, not the client's)."""

    requests: int = 0
    retries: int = 0
    throttled_waits: int = 0
    latencies_ms: list[int] = field(default_factory=list)
    reported_tokens: int | None = None  # input tokens the service says it used (None: it says not)

    def add_reported_tokens(self, body: Any) -> None:
        """Count the input tokens an answer reports (OpenAI's ``usage.prompt_tokens``;
        Elasticsearch's inference API reports none)."""
        usage = body.get("usage") if isinstance(body, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            self.reported_tokens = (self.reported_tokens or 0) + tokens


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON


def is_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


MAX_RETRY_AFTER_S = 300.0
"""The longest ``Retry-After`` obeyed: a server asking for hours would stall a worker."""


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def retry_wait_s(answer: "HttpAnswer | None", retry: int, settings: ClientSettings) -> float:
    """How long to wait before retry number ``retry + 1``: the server's ``Retry-After`` when
    it gave one (at most ``MAX_RETRY_AFTER_S``), our backoff with jitter otherwise."""
    asked = retry_after_s(answer.headers) if answer is not None else None
    return min(asked, MAX_RETRY_AFTER_S) if asked is not None else settings.backoff(retry)


class RemoteClient:
    """One remote service's event loop, session, concurrency bound and rate limiter."""

    def __init__(self, name: str, settings: ClientSettings) -> None:
        self.name = name  # shown in errors: never holds a secret
        self.settings = settings
        self.pid = os.getpid()
        self._limiter = RateLimiter(settings.requests_per_minute)
        self._loop = asyncio.new_event_loop()
        self._semaphore: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._thread = threading.Thread(target=self._run_loop, daemon=True,
                                        name=f"remote-{name}")
        self._thread.start()

    def submit(self, coroutine: Coroutine) -> Future:
        """Run ``coroutine`` on this client's loop; its result in a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _run_loop(self) -> None:
        self._loop.run_forever()
        self._loop.close()  # after close(): the loop has stopped

    def close(self) -> None:
        """Finish the requests in flight, close the session, end the loop's thread (without
        waiting for it: callers may be on an event loop)."""
        asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop)

    async def _shut_down(self) -> None:
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self._loop.shutdown_default_executor()  # the resolver's threads
        self._loop.call_soon(self._loop.stop)

    async def post_json(self, url: str, body: Any, headers: Mapping[str, str], stats: CallStats,
                        retry_connection_errors: bool = True) -> HttpAnswer:
        """POST ``body`` as JSON; retried as the module docstring says.

        ``retry_connection_errors=False`` (the start-up probe): a connection refused or an
        unknown host fails at once, as a wrong URL should (timeouts are still retried)."""
        import aiohttp

        settings = self.settings
        retry = 0
        while True:
            answer, failure = await self._attempt(url, body, headers, stats)
            if answer is not None and not is_retryable(answer.status):
                return answer
            if not retry_connection_errors and isinstance(failure, aiohttp.ClientConnectorError):
                raise RemoteServiceError(f"{self.name}: cannot connect: {failure}")
            problem = f"HTTP {answer.status}" if answer is not None else f"{type(failure).__name__}: {failure}"
            if retry >= settings.max_retries:
                raise RemoteServiceError(
                    f"{self.name}: gave up after {retry + 1} attempts, the last one: {problem}"
                    + (f": {error_message(answer.body)}" if answer is not None else ""))
            wait = retry_wait_s(answer, retry, settings)
            stats.retries += 1
            retry += 1
            await asyncio.sleep(wait)

    async def _attempt(self, url: str, body: Any, headers: Mapping[str, str],
                       stats: CallStats) -> tuple[HttpAnswer | None, Exception | None]:
        """One request, once a slot in flight and a start time under the rate limit are ours."""
        import aiohttp

        semaphore, session = self._semaphore, self._session
        if semaphore is None or session is None:  # created on the loop that uses them
            semaphore = self._semaphore = asyncio.Semaphore(self.settings.max_concurrent_requests)
            session = self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.settings.max_concurrent_requests,
                                               ssl=self.settings.ssl_context()),
            )
        async with semaphore:
            wait = self._limiter.reserve()
            if wait > 0:
                stats.throttled_waits += 1
                await asyncio.sleep(wait)
            stats.requests += 1
            started = time.perf_counter()
            try:
                async with session.post(url, data=json.dumps(body), headers=dict(headers)) as response:
                    # JSON is UTF-8; response.text() would guess the charset of every body
                    # without one (charset detection: ~100 ms of CPU per answer here).
                    text = (await response.read()).decode("utf-8", "replace")
                    answer = HttpAnswer(response.status, response.headers, _parsed(text))
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                return None, error
            finally:
                stats.latencies_ms.append(int((time.perf_counter() - started) * 1000))
            return answer, None


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def error_message(body: Any) -> str:
    """The server's own words: Elasticsearch's ``error.reason``, OpenAI's ``error.message``,
    else the body itself (shortened)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            for key in ("reason", "message"):
                if isinstance(error.get(key), str):
                    return error[key]
        if isinstance(error, str):
            return error
    text = body if isinstance(body, str) else json.dumps(body)
    return text if len(text) <= 300 else text[:297] + "..."


_CLIENTS: dict[str, RemoteClient] = {}
_CLIENTS_LOCK = threading.Lock()


_USERS: dict[int, int] = {}  # id(client) -> runtimes holding it


def client_for(key: str, name: str, settings: ClientSettings) -> RemoteClient:
    """The process's client for the remote service ``key`` (built on first use; a process
    forked from one that had it builds its own, as threads do not survive a fork). Callers
    that end (``enrich serve``'s endpoints) give it back with ``release_client``."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None or client.pid != os.getpid() or client.settings != settings:
            client = _CLIENTS[key] = RemoteClient(name, settings)
        _USERS[id(client)] = _USERS.get(id(client), 0) + 1
        return client


def release_client(key: str, client: RemoteClient) -> None:
    """One user of ``client`` is done; the last one closes it (its thread and session)."""
    with _CLIENTS_LOCK:
        users = _USERS.get(id(client), 1) - 1
        if users > 0:
            _USERS[id(client)] = users
            return
        _USERS.pop(id(client), None)
        if _CLIENTS.get(key) is client:
            del _CLIENTS[key]
    client.close()
