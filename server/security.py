"""API keys with Elasticsearch's inference privileges: who may run and who may manage endpoints.

Elasticsearch grants the inference API through two cluster privileges: ``monitor_inference``
(get endpoints, perform inference) and ``manage_inference`` (also create, update and delete
endpoints). Here each key carries one of them:

* ``ENRICH_API_KEYS``: comma-separated ``KEY`` or ``KEY:ROLE`` entries;
* ``--api-keys-file``: one ``KEY`` or ``KEY ROLE`` a line (``#`` comments).

A key without a role has every privilege, as an Elasticsearch API key without role
descriptors has its owner's. Keys never come from the command line (it shows in ``ps``),
are compared in constant time and are never logged or echoed. Clients send
``Authorization: ApiKey <key>`` (elasticsearch-py) or ``Bearer <key>`` (openai). With no key
configured the server is open: anyone who reaches the port may also manage endpoints, which
is why it binds 127.0.0.1 by default and says so at start.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from inference_enrich.server.errors import ApiError

API_KEYS_ENV = "ENRICH_API_KEYS"
SCHEMES = ("apikey", "bearer")
OPEN_PATHS = ("/_health",)
"""Answered without a key, for load balancers and orchestrators."""

MONITOR = "monitor_inference"
MANAGE = "manage_inference"
ROLES = (MONITOR, MANAGE)
MANAGING_METHODS = ("PUT", "DELETE")
"""Methods that create, update or delete endpoints (POST ``…/_update`` too, see ``action``)."""
ACTIONS = {"PUT": "cluster:admin/xpack/inference/put", "DELETE": "cluster:admin/xpack/inference/delete",
           "UPDATE": "cluster:admin/xpack/inference/update"}
"""Elasticsearch's action names, as its 403 names them."""


@dataclass(frozen=True)
class ApiKey:
    key: str
    role: str = MANAGE


def _parse_role(role: str, where: str) -> str:
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r} (known: {', '.join(ROLES)})")
    return role


def load_api_keys(path: str | None, environ: Mapping[str, str] = os.environ) -> tuple[ApiKey, ...]:
    """The accepted keys and their roles; a file given but unreadable or empty, or an unknown
    role, is an error at start-up, not a server that silently runs open or too open."""
    keys: list[ApiKey] = []
    for entry in environ.get(API_KEYS_ENV, "").split(","):
        key, _, role = entry.strip().partition(":")
        if key:
            keys.append(ApiKey(key, _parse_role(role.strip() or MANAGE, API_KEYS_ENV)))
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"cannot read API keys file {path}: {error.strerror}") from None
        from_file = []
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) > 2:
                raise ValueError(f"{path}:{number}: expected 'KEY' or 'KEY ROLE'")
            role = fields[1] if len(fields) == 2 else MANAGE
            from_file.append(ApiKey(fields[0], _parse_role(role, f"{path}:{number}")))
        if not from_file:
            raise ValueError(f"API keys file {path} holds no key")
        keys += from_file
    return tuple(keys)


def action(method: str, path: str) -> str | None:
    """The managing action a request is (None: reading or running endpoints)."""
    if path.endswith("/_update"):
        return ACTIONS["UPDATE"]
    if path.startswith("/_inference") and method in MANAGING_METHODS:
        return ACTIONS[method]
    return None


class ApiKeyCheck:
    """Checks a request's ``Authorization`` header against the configured keys and roles."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._keys = [(key.key.encode(), key.role) for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def describe(self) -> str:
        """For the start-up line: never a key, only how many hold which role."""
        if not self._keys:
            return ("API keys off: open local mode, anyone who reaches the port may run AND "
                    f"manage endpoints (set {API_KEYS_ENV} or --api-keys-file)")
        counts = {role: sum(1 for _, held in self._keys if held == role) for role in ROLES}
        return "API keys required (" + ", ".join(f"{n} {role}" for role, n in counts.items() if n) + ")"

    def check(self, method: str, path: str, authorization: str | None) -> None:
        """Raise Elasticsearch's 401 (no or a wrong key) or 403 (a key without the privilege)
        ``security_exception`` unless the request may pass."""
        if not self._keys or path in OPEN_PATHS:
            return
        if not authorization:
            raise _unauthorized(f"missing authentication credentials for REST request [{path}]")
        scheme, _, credential = authorization.strip().partition(" ")
        offered = credential.strip().encode()
        # Every key is compared, so the time taken does not tell which one nearly matched.
        roles = [role for key, role in self._keys if hmac.compare_digest(offered, key)]
        if scheme.lower() not in SCHEMES or not roles:
            raise _unauthorized("unable to authenticate with provided credentials and anonymous "
                                "access is not allowed for this request")
        wanted = action(method, path)
        if wanted is not None and MANAGE not in roles:
            raise ApiError(403, "security_exception",
                           f"action [{wanted}] is unauthorized for API key with role [{roles[0]}], "
                           f"this action is granted by the cluster privileges [{MANAGE},all]")


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, "security_exception", reason, headers={"WWW-Authenticate": "ApiKey"})
