"""Endpoints, local model runtimes and remote services, free of Beam so they also serve a
notebook or a REST app.

    registry = load_endpoints()                      # the endpoint store over configs/endpoints.yaml
    endpoint = registry.get("my-elser-model", "sparse_embedding")
    perform_inference(endpoint, "sparse_embedding", ["The sky above the port ..."])
"""

from inference_enrich.inference.endpoint_files import EndpointRegistry
from inference_enrich.inference.endpoint_store import load_endpoints
from inference_enrich.inference.endpoints import Endpoint
from inference_enrich.inference.errors import (
    EndpointConfigError,
    IncompatibleTaskTypeError,
    InferenceEnrichError,
    ModelLoadError,
    RemoteInputError,
    RemoteServiceError,
    TextInferenceError,
    UnknownEndpointError,
)
from inference_enrich.inference.results import (
    SPARSE_EMBEDDING,
    TEXT_EMBEDDING,
    SparseEmbedding,
    TextEmbedding,
)
from inference_enrich.inference.runtime import ModelRuntime, TokenizedText
from inference_enrich.inference.batching import infer_texts
from inference_enrich.inference.api import load_reranker, load_runtime, perform_inference, resolve_endpoint

__all__ = [
    "Endpoint",
    "EndpointRegistry",
    "load_endpoints",
    "EndpointConfigError",
    "IncompatibleTaskTypeError",
    "InferenceEnrichError",
    "ModelLoadError",
    "RemoteInputError",
    "RemoteServiceError",
    "TextInferenceError",
    "UnknownEndpointError",
    "SPARSE_EMBEDDING",
    "TEXT_EMBEDDING",
    "SparseEmbedding",
    "TextEmbedding",
    "ModelRuntime",
    "TokenizedText",
    "infer_texts",
    "load_reranker",
    "load_runtime",
    "perform_inference",
    "resolve_endpoint",
]
