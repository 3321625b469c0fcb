"""The connection to an Elasticsearch or OpenSearch cluster: one policy for the client's
options (transport retries, timeout, credentials, TLS) and one way to turn the client's
connection and answer errors into a one-line ``IndexUnreachable`` / ``IndexRefused``.

Whole-request failures (connection errors, timeouts, 429, 5xx) are retried by the client's
transport (``retry_on_status``, ``retry_on_timeout``, ``max_retries``); if they persist the
exception propagates and Beam retries the bundle. A cluster that cannot be reached at all
when the index is created, counted or searched (what ``enrich run`` does at launch and
``enrich search`` does) raises ``IndexUnreachable``: one line naming the cluster and the
cause, instead of the client's nested tracebacks."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

from inference_enrich.indexes.base import IndexRefused, IndexUnreachable
from inference_enrich.indexes.settings import DEFAULT_URLS, IndexSettings
from inference_enrich.inference.secrets import reveal

RETRY_ON_STATUS = (429, 500, 502, 503, 504)
MAX_RETRIES = 5
REQUEST_TIMEOUT = 60  # seconds


def connection_problem(error: Exception) -> str:
    """The root cause of a client's connection error in a few words (``Connection refused``,
    ``Name or service not known``): the clients nest it several wrappers deep."""
    text = str(error)
    errno = re.findall(r"\[Errno -?\d+\] ([^)\]'\"]+)", text)
    if errno:
        return errno[-1].strip()
    innermost = re.split(r"caused by: ", text)[-1].strip()
    return innermost or type(error).__name__


class ClusterClient:
    """Holds the engine's client; subclasses spell the options their client takes."""

    engine = ""
    connection_errors: tuple[type[Exception], ...] = ()  # the client's "could not connect"
    answer_errors: tuple[type[Exception], ...] = ()  # the client's "the server answered an error"

    def __init__(self, settings: IndexSettings) -> None:
        self._settings = settings
        self._name = settings.index
        self._url = settings.url or DEFAULT_URLS[settings.kind]
        self._client = self.connect(settings, self._url)

    # -- subclass hooks ------------------------------------------------------------------
    def new_client(self, url: str, **options: Any) -> Any:
        """The engine's client for ``url`` with ``options`` in its own spelling."""
        raise NotImplementedError

    def timeout_option(self, seconds: float) -> dict:
        """The time one request may take before the transport retries it (a timeout is
        retried like a 429 or a 5xx answer)."""
        raise NotImplementedError

    def api_key_option(self, api_key: str) -> dict:
        """Sent as ``Authorization: ApiKey <key>`` by both engines."""
        raise NotImplementedError

    def basic_auth_option(self, username: str, password: str) -> dict:
        raise NotImplementedError

    def tls_options(self, settings: IndexSettings) -> dict:
        """Certificate checks (``verify_certs``, ``ca_certs``) for an ``https`` URL."""
        raise NotImplementedError

    def is_engine_answer(self, error: Exception) -> bool:
        """Whether ``error`` came from a server that passed the client's product check."""
        return True

    # -- shared behaviour ----------------------------------------------------------------
    def connect(self, settings: IndexSettings, url: str) -> Any:
        """One policy for both engines (retries, timeout, credentials, TLS); the subclasses
        only spell the options their client takes, so a setting cannot reach one engine
        and be dropped by the other. An API key wins over a username."""
        options: dict[str, Any] = {"retry_on_status": RETRY_ON_STATUS, "max_retries": MAX_RETRIES,
                                   "retry_on_timeout": True, **self.timeout_option(REQUEST_TIMEOUT)}
        api_key = reveal(settings.api_key)
        if api_key:
            options.update(self.api_key_option(api_key))
        elif settings.username:
            options.update(self.basic_auth_option(settings.username, reveal(settings.password) or ""))
        if url.startswith("https"):
            options.update(self.tls_options(settings))
        return self.new_client(url, **options)

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turns the client's connection errors (after its own retries) into
        ``IndexUnreachable``, which names the cluster and the cause in one line."""
        try:
            yield
        except self.connection_errors as error:
            raise IndexUnreachable(
                f"cannot connect to {self._settings.describe()}: {connection_problem(error)}"
            ) from error
        except self.answer_errors as error:
            raise IndexRefused(f"{self._settings.describe()} {self.refusal(error)}") from error

    def refusal(self, error: Exception) -> str:
        """What the server answered, in one line: its own error when it is an
        Elasticsearch-style error body, else that it is not the engine at all."""
        status = getattr(getattr(error, "meta", None), "status", None) or getattr(error, "status_code", None)
        body = getattr(error, "body", None) if hasattr(error, "meta") else getattr(error, "info", None)
        cause = body.get("error") if isinstance(body, dict) else None
        if isinstance(cause, dict) and cause.get("type") and self.is_engine_answer(error):
            return (f"refused the request (HTTP {status}): {cause['type']}: "
                    f"{' '.join(str(cause.get('reason', '')).split())[:300]}")
        return (f"did not answer as {self.engine} does (HTTP {status}"
                f"{', no error body' if body in (None, '', 'None') else ''}): "
                f"is --es-url the address of an {self.engine} cluster?")

    def close(self) -> None:
        self._client.close()
