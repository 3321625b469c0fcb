"""Optional API-key authentication, as Elasticsearch does it: ``Authorization: ApiKey <key>``.

Keys come from the ``ENRICH_API_KEYS`` environment variable (comma-separated) and/or a file
(one key per line, ``#`` comments), never from the command line (it shows in ``ps``). With
no key configured, authentication is off. OpenAI-style clients send
``Authorization: Bearer <key>``; the same keys are accepted that way. Keys are compared in
constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Mapping

from inference_enrich.server.errors import ApiError

API_KEYS_ENV = "ENRICH_API_KEYS"
SCHEMES = ("apikey", "bearer")
OPEN_PATHS = ("/_health",)
"""Answered without a key, for load balancers and orchestrators."""


def load_api_keys(path: str | None, environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    """The accepted keys; a file given but unreadable or empty is an error at start-up, not
    a server that silently runs open."""
    keys = {key.strip() for key in environ.get(API_KEYS_ENV, "").split(",") if key.strip()}
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"cannot read API keys file {path}: {error.strerror}") from None
        from_file = {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
        if not from_file:
            raise ValueError(f"API keys file {path} holds no key")
        keys |= from_file
    return frozenset(keys)


class ApiKeyCheck:
    """Checks a request's ``Authorization`` header against the configured keys."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, path: str, authorization: str | None) -> None:
        """Raise Elasticsearch's 401 ``security_exception`` unless the request may pass."""
        if not self._keys or path in OPEN_PATHS:
            return
        if not authorization:
            raise _unauthorized(f"missing authentication credentials for REST request [{path}]")
        scheme, _, credential = authorization.strip().partition(" ")
        offered = credential.strip().encode()
        # Every key is compared, so the time taken does not tell which one nearly matched.
        matches = [hmac.compare_digest(offered, key) for key in self._keys]
        if scheme.lower() not in SCHEMES or not any(matches):
            raise _unauthorized("unable to authenticate with provided credentials and anonymous "
                                "access is not allowed for this request")


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, "security_exception", reason, headers={"WWW-Authenticate": "ApiKey"})
