"""OpenAI-compatible ``POST /v1/embeddings`` and ``GET /v1/models`` for ``text_embedding`` endpoints.

``model`` is the inference id. The official ``openai`` client asks for ``base64`` (float32,
little-endian) unless told otherwise, so both encodings are served. Errors use OpenAI's
envelope (``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import array
import base64
import sys
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inference_enrich.inference.results import TEXT_EMBEDDING, InferenceResult, TextEmbedding
from inference_enrich.server.context import ServerContext
from inference_enrich.server.errors import ApiError
from inference_enrich.server.request_parsing import check_input_count, input_texts, read_json_object

ENCODINGS = ("float", "base64")


def _invalid(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message)


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _dense(result: InferenceResult) -> list[float]:
    """A text_embedding endpoint's result (the server embeds texts whole, never in chunks)."""
    if not isinstance(result, TextEmbedding):
        raise TypeError(f"a text_embedding endpoint answered a {type(result).__name__}")
    return result.embedding


def _model(context: ServerContext, body: dict[str, Any]):
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter (the inference id of a text_embedding endpoint)")
    if not context.store.contains(model):
        raise ApiError(404, "model_not_found", f"The model `{model}` does not exist")
    endpoint = context.store.get(model)
    if endpoint.task_type != TEXT_EMBEDDING:
        raise _invalid(f"model `{model}` is a {endpoint.task_type} endpoint; /v1/embeddings serves "
                       f"{TEXT_EMBEDDING} endpoints (use POST _inference/{endpoint.task_type}/{model})")
    return endpoint


async def create_embeddings(request: Request) -> Response:
    context = ServerContext.of(request)
    body = await read_json_object(request)
    raw = body.get("input")
    if isinstance(raw, list) and raw and all(isinstance(item, (int, list)) for item in raw):
        raise _invalid("token-id input is not supported; send the text")
    try:
        texts = input_texts(body, "embeddings")
    except ApiError as error:
        raise _invalid(error.reason) from None
    if any(not text for text in texts):
        raise _invalid("'$.input' is invalid: input cannot contain an empty string")
    check_input_count(texts, context.settings.max_inputs)
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise _invalid(f"encoding_format must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    endpoint = _model(context, body)
    outcome = await context.infer(endpoint, texts, context.settings.request_timeout_s)
    dimensions = body.get("dimensions")
    width = len(outcome.results[0].embedding)
    if dimensions is not None and dimensions != width:
        raise _invalid(f"model `{endpoint.inference_id}` has {width} dimensions and cannot "
                       f"return {dimensions}")
    data = [{"object": "embedding", "index": index, "embedding": encode_vector(_dense(result), encoding)}
            for index, result in enumerate(outcome.results)]
    return JSONResponse({
        "object": "list",
        "data": data,
        "model": endpoint.inference_id,
        "usage": {"prompt_tokens": outcome.tokens, "total_tokens": outcome.tokens},
    })


async def list_models(request: Request) -> Response:
    """``GET /v1/models`` (every OpenAI client's first call): the text_embedding endpoints,
    in OpenAI's list shape, ``id`` being the inference id to pass as ``model``."""
    context = ServerContext.of(request)
    return JSONResponse({"object": "list", "data": [
        {"id": endpoint.inference_id, "object": "model", "created": 0, "owned_by": "inference-enrich"}
        for endpoint in context.store.list(TEXT_EMBEDDING)]})


ROUTES = [
    Route("/v1/embeddings", create_embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
