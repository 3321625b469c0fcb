"""Reading request bodies and parameters the way Elasticsearch does, with its error wording."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request

from inference_enrich.server.errors import ApiError, parse_failure, validation_failed

OFF_LOOP_BYTES = 1024 * 1024
MAX_NESTING_DEPTH = 100
"""Arrays and objects in a body, the top one included (a pipeline record's limit too)."""
INFERENCE_FIELDS = ("input", "input_type", "task_settings")
INPUT_TYPES = ("classification", "clustering", "ingest", "search")
TIME_UNITS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME_VALUE = re.compile(r"^(\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)$")


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, or the 400 that says why not. Every JSON route
    reads its body here; a large body is parsed off the event loop, which keeps answering
    meanwhile, and gets the same answers."""
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "parse_exception", "request body is required")
    body = parse_json(raw) if len(raw) < OFF_LOOP_BYTES else await asyncio.to_thread(parse_json, raw)
    if not isinstance(body, dict):
        raise parse_failure("request body must be a JSON object")
    return body


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed, at most ``MAX_NESTING_DEPTH`` arrays and objects deep (a 400 beyond:
    json's parser would raise ``RecursionError`` a few hundred levels further, and what is
    done with a body later, writing the endpoint store, say, recurses too)."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as error:
        raise parse_failure(f"[{error.lineno}:{error.colno}] {error.msg}") from None
    except UnicodeDecodeError:
        raise parse_failure("request body is not valid UTF-8") from None
    except RecursionError:
        raise too_deep() from None
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING_DEPTH:  # fewer cannot nest that deep
        _check_depth(body)
    return body


def too_deep() -> ApiError:
    return parse_failure(
        f"request body is nested too deeply: more than {MAX_NESTING_DEPTH} levels of arrays and objects")


def _check_depth(body: Any) -> None:
    """Level by level, without recursion."""
    level = [body] if isinstance(body, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_NESTING_DEPTH:
            raise too_deep()
        below: list[Any] = []
        for node in level:
            below.extend(child for child in (node.values() if isinstance(node, dict) else node)
                         if isinstance(child, (dict, list)))
        level = below


def input_texts(body: dict[str, Any], request_name: str) -> list[str]:
    """``input`` as a list of strings: a string or a non-empty array of strings."""
    raw = body.get("input")
    if raw is None:
        raise validation_failed("Field [input] cannot be null")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise parse_failure(
            f"[{request_name}] failed to parse field [input]: expected a string or an array of strings")
    if not texts:
        raise validation_failed("Field [input] cannot be an empty array")
    for index, text in enumerate(texts):
        check_unicode(text, f"Field [input] entry [{index}]")
    return texts


def check_unicode(text: str, field: str) -> None:
    """JSON's ``\\ud800`` escapes decode to lone surrogates, which are not text: no tokenizer
    takes them (it fails with a type error), so say which ``field`` (``Field [query]``,
    ``Field [input] entry [2]``) and where, as a 400.
    (UTF-8 encoding finds them at memory speed; a regular expression took 0.3 s on 9 MB,
    all of it on the event loop.)"""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise validation_failed(
            f"{field} is not valid Unicode: a lone surrogate "
            f"[\\u{ord(text[error.start]):04x}] at position [{error.start}]") from None


def check_input_count(texts: list[str], max_inputs: int) -> None:
    if len(texts) > max_inputs:
        raise validation_failed(
            f"Field [input] has {len(texts)} entries; this server accepts at most {max_inputs} per request")


def parse_inference_body(body: dict[str, Any]) -> tuple[list[str], str | None, Any]:
    """(texts, input_type, task_settings) of ``POST _inference/...``."""
    for key in body:
        if key not in INFERENCE_FIELDS:
            raise parse_failure(f"[inference_request] unknown field [{key}]")
    texts = input_texts(body, "inference_request")
    input_type = body.get("input_type")
    if input_type is not None and (not isinstance(input_type, str) or input_type.lower() not in INPUT_TYPES):
        raise validation_failed(
            f"Field [input_type] has an invalid value [{input_type}]; valid values are "
            f"[{', '.join(INPUT_TYPES)}]")
    return texts, input_type, body.get("task_settings")


def parse_time_value(value: str | None, default: float | None) -> float | None:
    """Seconds for an Elasticsearch time value (``30s``, ``500ms``, ``1m``; ``-1``: no limit)."""
    if value is None:
        return default
    value = value.strip().lower()
    if value == "-1":
        return None
    if value == "0":
        return 0.0
    match = _TIME_VALUE.match(value)
    if match is None:
        raise ApiError(400, "parse_exception",
                       f"failed to parse setting [timeout] with value [{value}] as a time value: "
                       "unit is missing or unrecognized")
    return float(match.group(1)) * TIME_UNITS[match.group(2)]


def format_time_value(seconds: float) -> str:
    return f"{seconds:g}s"
