"""Elasticsearch's inference API routes: perform inference, create, update, get, delete.

    POST   _inference[/{task_type}]/{inference_id}        {"input": ..., "task_settings": ...}
    PUT    _inference[/{task_type}]/{inference_id}        {"service": ..., "service_settings": ...}
    PUT    _inference[/{task_type}]/{inference_id}/_update
    GET    _inference, _inference/_all, _inference/{inference_id},
           _inference/{task_type}/_all, _inference/{task_type}/{inference_id}
    DELETE _inference[/{task_type}]/{inference_id}

Checks run in Elasticsearch's order (path, then body, then the endpoint), so a request
with several faults gets the error Elasticsearch would give.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inference_enrich.inference import Endpoint
from inference_enrich.inference.results import (
    RERANK,
    SPARSE_EMBEDDING,
    TEXT_EMBEDDING,
    InferenceResult,
    SparseEmbedding,
    prune,
)
from inference_enrich.server.context import ServerContext
from inference_enrich.server.errors import endpoint_exists, validation_failed
from inference_enrich.server.media import ELASTICSEARCH_VERSION, json_response
from inference_enrich.server.model_sources import map_elasticsearch_service
from inference_enrich.server.rerank_api import perform_rerank
from inference_enrich.server.request_parsing import (
    check_input_count,
    parse_inference_body,
    parse_time_value,
    read_json_object,
)
from inference_enrich.server.store import (
    check_inference_id,
    check_task_type_name,
    endpoint_from_body,
    endpoint_to_body,
    updated_endpoint,
    with_task_settings,
)

UPDATE = "_update"
ALL = "_all"


def prune_sparse(embedding: dict[str, float], task_settings: Mapping[str, Any]) -> dict[str, float]:
    """A sparse endpoint's (or request's) ``min_weight`` / ``top_k`` applied to one result."""
    return prune(embedding, task_settings.get("min_weight"), task_settings.get("top_k"))


def _sparse(result: InferenceResult) -> dict[str, float]:
    """A sparse endpoint's result (the server embeds texts whole, never in chunks)."""
    if not isinstance(result, SparseEmbedding):
        raise TypeError(f"a sparse_embedding endpoint answered a {type(result).__name__}")
    return result.embedding


def inference_response(endpoint: Endpoint, results: Sequence[InferenceResult]) -> dict[str, Any]:
    """Elasticsearch's body: ``{"sparse_embedding": [{"is_truncated", "embedding": {tok: w}}]}``
    or ``{"text_embedding": [{"embedding": [...]}]}``, one entry per input, in order."""
    if endpoint.task_type == SPARSE_EMBEDDING:
        settings = dict(endpoint.task_settings)
        return {SPARSE_EMBEDDING: [
            {"is_truncated": result.is_truncated, "embedding": prune_sparse(_sparse(result), settings)}
            for result in results]}
    return {TEXT_EMBEDDING: [{"embedding": result.embedding} for result in results]}


def _path(request: Request) -> tuple[str | None, str]:
    """(task type or None, inference id) of ``_inference[/{task_type}]/{inference_id}``."""
    task_type = request.path_params.get("task_type")
    if task_type is not None:
        check_task_type_name(task_type)
    return task_type, request.path_params["inference_id"]


def _is_update(request: Request) -> bool:
    """``_inference/{inference_id}/_update`` has the shape of ``_inference/{task_type}/{inference_id}``."""
    return request.path_params.get("inference_id") == UPDATE and "task_type" in request.path_params


async def perform_inference(request: Request) -> Response:
    if _is_update(request):  # Elasticsearch 8.17 took the update as POST
        return await _update(request, None, request.path_params["task_type"])
    context = ServerContext.of(request)
    task_type, inference_id = _path(request)
    body = await read_json_object(request)
    timeout = parse_time_value(request.query_params.get("timeout"), context.settings.request_timeout_s)
    if task_type == RERANK or (task_type is None and context.store.contains(inference_id)
                               and context.store.get(inference_id).task_type == RERANK):
        return await perform_rerank(request, context.store.get(inference_id, task_type), body, timeout)
    texts, input_type, task_settings = parse_inference_body(body)
    check_input_count(texts, context.settings.max_inputs)
    endpoint = context.store.get(inference_id, task_type)
    if input_type is not None and endpoint.task_type != TEXT_EMBEDDING:
        raise validation_failed(f"Field [input_type] cannot be specified for task type [{endpoint.task_type}]")
    if task_settings and endpoint.service_info.task_settings_in_requests:  # applied where they are sent
        raise validation_failed(f"[task_settings] cannot be overridden per request for the remote "
                                f"service [{endpoint.service}]; update the endpoint instead")
    effective = endpoint if task_settings is None else with_task_settings(endpoint, task_settings)
    outcome = await context.infer(endpoint, texts, timeout)
    return json_response(request, inference_response(effective, outcome.results))


async def put_endpoint(request: Request) -> Response:
    if _is_update(request):
        return await _update(request, None, request.path_params["task_type"])
    context = ServerContext.of(request)
    task_type, inference_id = _path(request)
    check_inference_id(inference_id)
    body, mapped = map_elasticsearch_service(await read_json_object(request), task_type)
    endpoint = endpoint_from_body(inference_id, body, task_type, context.model_roots)
    timeout = parse_time_value(request.query_params.get("timeout"), context.settings.request_timeout_s)
    if context.store.contains(inference_id):  # refused before loading anything (and on commit)
        raise endpoint_exists(inference_id)
    await context.install(endpoint, timeout, lambda: context.store.create(endpoint))
    response = json_response(request, endpoint_to_body(endpoint))
    if mapped is not None:  # elasticsearch-py shows a Warning header as an ElasticsearchWarning
        response.headers["Warning"] = f'299 Elasticsearch-{ELASTICSEARCH_VERSION} "{mapped}"'
    return response


async def update_endpoint(request: Request) -> Response:
    return await _update(request, *_path(request))


async def _update(request: Request, task_type: str | None, inference_id: str) -> Response:
    context = ServerContext.of(request)
    current = context.store.get(inference_id, task_type)
    endpoint = updated_endpoint(current, await read_json_object(request), context.model_roots)
    await context.install(endpoint, context.settings.request_timeout_s,
                          lambda: context.store.replace(endpoint, based_on=current))
    return json_response(request, endpoint_to_body(endpoint))


async def get_endpoints(request: Request) -> Response:
    context = ServerContext.of(request)
    task_type = request.path_params.get("task_type")
    inference_id = request.path_params.get("inference_id", ALL)
    if task_type is not None:
        check_task_type_name(task_type)
    if inference_id == ALL:
        endpoints = context.store.list(task_type)
    else:
        endpoints = [context.store.get(inference_id, task_type)]
    return json_response(request, {"endpoints": [endpoint_to_body(e) for e in endpoints]})


async def delete_endpoint(request: Request) -> Response:
    context = ServerContext.of(request)
    task_type, inference_id = _path(request)
    context.store.get(inference_id, task_type)
    await context.store.delete(inference_id)
    context.retire_unused_models()
    return json_response(request, {"acknowledged": True})


ROUTES = [
    Route("/_inference", get_endpoints, methods=["GET"]),
    Route("/_inference/{inference_id}", get_endpoints, methods=["GET"]),
    Route("/_inference/{inference_id}", perform_inference, methods=["POST"]),
    Route("/_inference/{inference_id}", put_endpoint, methods=["PUT"]),
    Route("/_inference/{inference_id}", delete_endpoint, methods=["DELETE"]),
    Route("/_inference/{task_type}/{inference_id}", get_endpoints, methods=["GET"]),
    Route("/_inference/{task_type}/{inference_id}", perform_inference, methods=["POST"]),
    Route("/_inference/{task_type}/{inference_id}", put_endpoint, methods=["PUT"]),
    Route("/_inference/{task_type}/{inference_id}", delete_endpoint, methods=["DELETE"]),
    Route("/_inference/{task_type}/{inference_id}/_update", update_endpoint, methods=["PUT", "POST"]),
]
