"""The server's endpoints: validated by the YAML loader's rules, persisted in the YAML file.

``PUT _inference/<task_type>/<inference_id>`` bodies are checked by the very function that
checks ``configs/endpoints.yaml`` (``Endpoint.from_body``), so a mistake gets the same message
over REST as at a pipeline's start-up. Every change is written to the endpoint store's file
(``inference/endpoint_store.py``), the one every ``enrich`` command reads, so an endpoint
made with PUT can enrich a corpus and survives a restart; the file may be shared with other
servers and hand edits (``EndpointStore`` says what each sees and keeps). Which models a
body may name is ``model_sources.py``'s to say.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, Callable

from inference_enrich.inference import Endpoint, EndpointConfigError
from inference_enrich.inference.endpoint_store import (
    change_endpoint,
    packaged_endpoints,
    parse_overlay,
    read_store_bytes,
)
from inference_enrich.inference.secrets import is_secret_name, masked
from inference_enrich.server.model_sources import ModelRoots, check_body_models
from inference_enrich.server.errors import (
    ApiError,
    bad_request,
    endpoint_exists,
    endpoint_not_found,
)

ELASTICSEARCH_TASK_TYPES = ("sparse_embedding", "text_embedding", "rerank", "completion",
                            "chat_completion")
"""Every task type Elasticsearch knows: anything else in a path is ``Unknown task_type``."""

UPDATABLE_SECTIONS = ("service_settings", "task_settings", "chunking_settings")

LOG = logging.getLogger(__name__)

_INFERENCE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")


def check_task_type_name(task_type: str) -> None:
    if task_type not in ELASTICSEARCH_TASK_TYPES:
        raise bad_request(f"Unknown task_type [{task_type}]")


def check_inference_id(inference_id: str) -> None:
    """Elasticsearch's rule for new ids (it also keeps the YAML keys plain)."""
    if not _INFERENCE_ID.match(inference_id):
        raise ApiError(
            400, "action_request_validation_exception",
            f"Validation Failed: 1: Invalid inference_id; '{inference_id}' can contain lowercase "
            "alphanumeric (a-z and 0-9), hyphens or underscores; must start and end with "
            "alphanumeric and be at most 64 characters;",
        )


def endpoint_from_body(inference_id: str, body: Any, task_type: str | None,
                       roots: ModelRoots | None = None) -> Endpoint:
    """A PUT body (``service``, ``service_settings``, ``task_settings``, ``chunking_settings``)
    as a validated endpoint, by the endpoints file's own rules and messages. ``task_type``
    comes from the path or, when the path has none, the body. With ``roots`` (a client's
    body, not the operator's file), a local model must be one the operator allows; this is
    checked before anything looks at the disk."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object", "parse_exception")
    if roots is not None:
        check_body_models(body, roots)
    try:
        return Endpoint.from_body(inference_id, body, task_type, source="request body")
    except EndpointConfigError as error:
        raise bad_request(str(error), "validation_exception") from None


def endpoint_to_body(endpoint: Endpoint) -> dict[str, Any]:
    """One element of ``GET _inference``'s ``endpoints``, secrets left out."""
    body = endpoint.to_body()
    body["service_settings"] = masked("service_settings", {  # URLs lose their passwords too
        key: value for key, value in body["service_settings"].items() if not is_secret_name(key)})
    return {"inference_id": endpoint.inference_id, **body}


def with_task_settings(endpoint: Endpoint, overrides: Any) -> Endpoint:
    """``endpoint`` with a request's ``task_settings`` laid over its own, validated by the
    loader's rules (Elasticsearch lets a request override the endpoint's task settings)."""
    if not isinstance(overrides, dict):
        raise bad_request("[task_settings] must be an object", "x_content_parse_exception")
    body = endpoint.to_body()
    body["task_settings"] = {**endpoint.task_settings, **overrides}
    return endpoint_from_body(endpoint.inference_id, body, None)


def updated_endpoint(endpoint: Endpoint, changes: Any, roots: ModelRoots) -> Endpoint:
    """``PUT _inference/<id>/_update``: settings sections merged key by key, then validated."""
    if not isinstance(changes, dict):
        raise bad_request("The request body must be a JSON object", "parse_exception")
    for key, value in changes.items():
        if key not in UPDATABLE_SECTIONS:
            raise bad_request(
                f"[{key}] cannot be updated (updatable: {', '.join(UPDATABLE_SECTIONS)}); "
                "delete the endpoint and create it again to change it"
            )
        if not isinstance(value, dict):
            raise bad_request(f"[{key}] must be an object", "x_content_parse_exception")
    body = endpoint.to_body()
    for key, value in changes.items():
        body[key] = {**body.get(key, {}), **value}
    return endpoint_from_body(endpoint.inference_id, body, None,
                              roots if "model_id" in changes.get("service_settings", {}) else None)


class EndpointStore:
    """The endpoint store (``inference/endpoint_store.py``: the packaged endpoints under one
    YAML file), changed only through PUT, ``_update`` and DELETE.

    The file is the truth, shared with every other process that uses it (another ``enrich
    serve`` on the same store, a user editing it): each change is applied, under the store's
    file lock, to the file as it is at that moment and changes only the endpoint it is
    about, so an endpoint someone else wrote is never dropped. PUT of an id the file holds
    is refused (exists), ``_update`` and DELETE of one it no longer holds get 404, and an
    ``_update`` whose endpoint someone else changed since this server read it gets 409 (send
    it again). What others add, change or delete shows here at the next read (lookups,
    GET, inference): each read re-reads the file, and re-parses it when its content
    changed. A file that does not read or validate is never overwritten: a change answers
    500 naming the file and the problem, and reads keep the last good view (logged once).

    Changes are serialised within the process by an asyncio lock and run off the event
    loop; the view is replaced only after the file was written, so a failed write changes
    nothing. A packaged endpoint cannot be deleted (it would come back at the next start);
    ``_update`` shadows it with the updated copy.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._packaged = packaged_endpoints()
        self._endpoints: dict[str, Endpoint] = {}
        self._seen: bytes | None | bool = False  # the file's content last read or written here
        self._refresh(strict=True)  # at start, an invalid file stops the server
        self._lock = asyncio.Lock()

    def _refresh(self, strict: bool = False) -> None:
        """Re-read the file if its content changed since it was last read (or written) here.
        (Reading a few kilobytes is cheap; parsing them is done only on a change. Content,
        not mtime, is compared: a coarse clock would hide a change within one tick.)"""
        content: bytes | None | bool = True  # True: unreadable
        try:
            content = read_store_bytes(self.path)
            if content == self._seen:
                return
            overlay = parse_overlay(content, self.path)
        except EndpointConfigError as error:
            if strict:
                raise
            if content != self._seen:  # logged once per bad content
                LOG.error("endpoint store not re-read, still serving what it held before: %s", error)
            self._seen = content
            return
        self._endpoints, self._seen = {**self._packaged, **overlay}, content

    def _view(self) -> dict[str, Endpoint]:
        self._refresh()
        return self._endpoints

    def __len__(self) -> int:
        return len(self._view())

    def get(self, inference_id: str, task_type: str | None = None) -> Endpoint:
        endpoint = self._view().get(inference_id)
        if endpoint is None:
            raise endpoint_not_found(inference_id)
        if task_type is not None:
            endpoint.require_task_type(task_type)
        return endpoint

    def contains(self, inference_id: str) -> bool:
        return inference_id in self._view()

    def list(self, task_type: str | None = None) -> list[Endpoint]:
        endpoints = self._view()
        return [endpoints[key] for key in sorted(endpoints)
                if task_type is None or endpoints[key].task_type == task_type]

    async def create(self, endpoint: Endpoint) -> None:
        def decide(current: Endpoint | None) -> Endpoint:
            if current is not None:
                raise endpoint_exists(endpoint.inference_id)
            return endpoint
        await self._change(endpoint.inference_id, decide)

    async def replace(self, endpoint: Endpoint, based_on: Endpoint | None = None) -> None:
        """Put ``endpoint`` in place of the one with its id; with ``based_on`` (what the
        update was computed from), only if that is still what the file holds."""
        def decide(current: Endpoint | None) -> Endpoint:
            if current is None:
                raise endpoint_not_found(endpoint.inference_id)
            if based_on is not None and current != based_on:
                raise ApiError(409, "version_conflict_engine_exception",
                               f"Inference endpoint [{endpoint.inference_id}] was changed by another "
                               "writer of the endpoint store while this update ran; send it again")
            return endpoint
        await self._change(endpoint.inference_id, decide)

    async def delete(self, inference_id: str) -> Endpoint:
        deleted: list[Endpoint] = []

        def decide(current: Endpoint | None) -> None:
            if current is None:
                raise endpoint_not_found(inference_id)
            if inference_id in self._packaged:
                raise bad_request(f"Inference endpoint [{inference_id}] is a packaged endpoint and cannot be "
                                  "deleted (it is part of every store); _update changes it")
            deleted.append(current)
            return None
        await self._change(inference_id, decide)
        return deleted[0]

    async def _change(self, inference_id: str,
                      decide: Callable[[Endpoint | None], Endpoint | None]) -> None:
        async with self._lock:
            try:
                endpoints, content = await asyncio.to_thread(change_endpoint, self.path, inference_id, decide)
            except EndpointConfigError as error:
                raise ApiError(500, "illegal_state_exception",
                               f"{error}; fix or remove the file and send the request again") from None
            except OSError as error:
                raise ApiError(500, "illegal_state_exception",
                               f"cannot write the endpoint store {self.path}: {error} "
                               "(the endpoint store was not changed)") from None
            self._endpoints, self._seen = endpoints, content
