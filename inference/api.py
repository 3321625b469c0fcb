"""The Beam-free inference API: endpoint -> loaded runtime, and Elasticsearch's one-request call.

The loaders here are the runtime factory, the one place that picks a local model or a remote
service's client (by ``Endpoint.service_info``); everyone else asks the runtime protocol
(``runtime.py``), and the remote plugin is imported only when a remote endpoint is used."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from inference_enrich.inference.batching import infer_texts
from inference_enrich.inference.chunked import infer_chunked_texts
from inference_enrich.inference.endpoint_store import load_endpoints
from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.models import resolve_model_path
from inference_enrich.inference.rerank_results import Reranker, rerank_response
from inference_enrich.inference.results import (
    RERANK,
    SPARSE_EMBEDDING,
    TEXT_EMBEDDING,
    InferenceResult,
    to_inference_response,
)
from inference_enrich.inference.runtime import ModelRuntime, SharedRuntime, WholeTextRuntime, takes_whole_texts

if TYPE_CHECKING:
    from inference_enrich.inference.remote.runtime import RemoteRuntime

RUNTIMES: dict[str, str] = {SPARSE_EMBEDDING: "sparse.SparseEncoder", TEXT_EMBEDDING: "dense.DenseEncoder",
                            RERANK: "rerank.CrossEncoder"}
"""task type -> runtime class of the ``transformers`` service, in ``inference/``; imported
when a model is loaded, so listing or validating endpoints never imports torch."""
_IMPORTING = threading.Lock()
"""The first load imports torch and transformers, whose lazy modules are not safe to import
from two threads at once (``enrich serve --preload`` loads each model in its own thread)."""


def resolve_endpoint(endpoint: str | Endpoint, endpoints_file: str | Path | None = None) -> Endpoint:
    """``endpoint`` itself, or the endpoint of that inference id in ``endpoints_file`` (the
    packaged ``configs/endpoints.yaml`` when None)."""
    if isinstance(endpoint, Endpoint):
        return endpoint
    return load_endpoints(endpoints_file).get(endpoint)


def load_runtime(endpoint: Endpoint) -> ModelRuntime | WholeTextRuntime:
    """Load the model behind an embedding ``endpoint`` (the expensive step: do it once per
    process); a rerank endpoint is loaded by ``load_reranker``.

    For a remote service, the client to it instead, checked with one request so a wrong URL
    or key fails here, at start-up (``RemoteServiceError``). Either runtime is safe to share
    between threads (see ``SharedRuntime``)."""
    if endpoint.task_type == RERANK:
        raise ValueError(f"endpoint '{endpoint.inference_id}' is a rerank endpoint: load it with load_reranker")
    if endpoint.service_info.tokenizes_locally:
        return SharedRuntime(_load_local(endpoint))
    remote = _remote_runtime(endpoint)
    remote.probe()
    return remote


def load_reranker(endpoint: Endpoint) -> Reranker:
    """Load the cross-encoder behind a rerank ``endpoint``, or the client to its remote service."""
    endpoint.require_task_type(RERANK)
    if endpoint.service_info.tokenizes_locally:
        return _load_local(endpoint)
    from inference_enrich.inference.remote.rerank import RemoteReranker

    return RemoteReranker(endpoint)


def _remote_runtime(endpoint: Endpoint) -> RemoteRuntime:
    """The client of a service that runs the model elsewhere: the remote plugin is imported
    here, when such an endpoint is used, so the core never imports it."""
    from inference_enrich.inference.remote.runtime import RemoteRuntime

    return RemoteRuntime(endpoint)


def _load_local(endpoint: Endpoint) -> Any:
    """The ``transformers`` service's runtime class of ``endpoint``'s task type, loaded."""
    settings = endpoint.service_settings
    options = {"quantization": settings["quantization"]} if "quantization" in settings else {}
    module, name = RUNTIMES[endpoint.task_type].split(".")
    with _IMPORTING:
        runtime_class = getattr(importlib.import_module(f"inference_enrich.inference.{module}"), name)
    return runtime_class(
        resolve_model_path(endpoint.model_id),
        endpoint.model_id,
        settings.get("max_sequence_length"),
        endpoint.task_settings,
        **options,
    )


def perform_inference(endpoint: Endpoint, task_type: str, texts: Sequence[str], query: str | None = None,
                      top_n: int | None = None, return_documents: bool | None = None) -> dict[str, Any]:
    """``POST _inference/<task_type>/<inference_id> {"input": texts}``, answered locally.

    Raises ``IncompatibleTaskTypeError`` before loading anything when ``task_type`` is not
    the endpoint's, as Elasticsearch does. An endpoint with ``chunking_settings`` answers
    one entry per text whose ``embedding`` is its chunks (``start_offset``, ``end_offset``,
    ``embedding``), the shape the job writes. A rerank endpoint takes ``query`` (and
    ``top_n``, ``return_documents``) and answers ``{"rerank": [...]}`` (inference/rerank.py).
    """
    endpoint.require_task_type(task_type)
    if task_type == RERANK:
        if query is None:
            raise ValueError("Field [query] cannot be null")
        return rerank_response(load_reranker(endpoint).rerank(query, texts, top_n, return_documents))
    if query is not None or top_n is not None or return_documents is not None:
        raise ValueError(f"[query], [top_n] and [return_documents] are for the rerank task type, not [{task_type}]")
    return to_inference_response(task_type, infer_endpoint_texts(endpoint, load_runtime(endpoint), texts))


def infer_endpoint_texts(
    endpoint: Endpoint, runtime: ModelRuntime | WholeTextRuntime, texts: Sequence[str], max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[InferenceResult]:
    """``texts`` through ``endpoint``'s loaded ``runtime``: whole, or chunk by chunk when the
    endpoint has ``chunking_settings``; raises ``TextInferenceError`` for a failed text."""
    if endpoint.chunking_settings is None or takes_whole_texts(runtime):  # whole texts: never chunked
        return infer_texts(runtime, texts, max_batch_tokens, max_batch_size)
    return [*infer_chunked_texts(runtime, texts, endpoint.chunking_settings, max_batch_tokens, max_batch_size)]


def probe(endpoint: Endpoint) -> None:
    """Ask a remote endpoint one request, so a wrong URL or key fails in one line
    (``RemoteServiceError``) before any work; a local endpoint needs no probe."""
    if not endpoint.service_info.tokenizes_locally:
        _remote_runtime(endpoint).probe()


def embedding_dimensions(endpoint: Endpoint) -> int | None:
    """Dense vector size of a text_embedding endpoint (from the model config, without
    loading weights; a remote service is asked with one request); None for sparse endpoints."""
    if endpoint.task_type != TEXT_EMBEDDING:
        return None
    if not endpoint.service_info.tokenizes_locally:
        return endpoint.service_settings.get("dimensions") or len(_remote_runtime(endpoint).probe().embedding)
    from inference_enrich.inference.bert.support import read_config

    path = resolve_model_path(endpoint.model_id)
    config = read_config(path)
    if "hidden_size" in config:  # a local directory: no transformers import for one number
        return int(config["hidden_size"])
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(path).hidden_size)
