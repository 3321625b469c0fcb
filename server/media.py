"""Elasticsearch's media types, and JSON responses in the one the client asked for.

elasticsearch-py sends ``Accept`` and ``Content-Type:
application/vnd.elasticsearch+json; compatible-with=8`` (9 for the 9.x client); Elasticsearch
answers in the same media type, refuses a compatibility version it does not speak (400) and a
body type it cannot parse (406).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import Response

from inference_enrich.server.errors import ApiError

ELASTICSEARCH_JSON = "application/vnd.elasticsearch+json"
COMPATIBLE_VERSIONS = ("8", "9")
JSON_TYPES = ("application/json", ELASTICSEARCH_JSON)
_COMPATIBLE_WITH = re.compile(r";\s*compatible-with\s*=\s*([^;\s]+)", re.IGNORECASE)

ELASTICSEARCH_VERSION = "8.19.0"
"""The Elasticsearch whose inference API (routes, bodies, errors) this server speaks."""


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def compatible_version(value: str | None) -> str | None:
    """The N of ``application/vnd.elasticsearch+json; compatible-with=N`` (None for plain
    JSON or no header); an N this server does not speak is Elasticsearch's 400."""
    if not value or _media_type(value) != ELASTICSEARCH_JSON:
        return None
    match = _COMPATIBLE_WITH.search(value)
    if match is None or match.group(1) not in COMPATIBLE_VERSIONS:
        raise ApiError(
            400,
            "media_type_header_exception",
            f"Invalid media-type value on headers [Accept, Content-Type]: [{value}]; "
            f"compatible-with must be one of [{', '.join(COMPATIBLE_VERSIONS)}]",
        )
    return match.group(1)


def check_media_types(headers: Mapping[str, str]) -> None:
    """Refuse what Elasticsearch refuses: unknown compatibility versions, non-JSON bodies."""
    compatible_version(headers.get("accept"))
    content_type = headers.get("content-type")
    if content_type is None:
        return
    compatible_version(content_type)
    if _media_type(content_type) not in JSON_TYPES:
        raise ApiError(
            406, "media_type_header_exception", f"Content-Type header [{content_type}] is not supported"
        )


def response_media_type(headers: Mapping[str, str]) -> str:
    """Answer a compatibility-mode request in its media type, anything else as plain JSON."""
    version = compatible_version(headers.get("accept"))
    return f"{ELASTICSEARCH_JSON};compatible-with={version}" if version else "application/json"


def json_response(
    request: Request, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as JSON in the client's media type (``?pretty`` indents it, as in Elasticsearch)."""
    pretty = request.query_params.get("pretty", "false") != "false"
    text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None,
                      separators=None if pretty else (",", ":"))
    return Response(text.encode("utf-8"), status, dict(headers or {}),
                    media_type=response_media_type(request.headers))
