"""Errors answered in Elasticsearch's envelope (or OpenAI's, on the ``/v1`` routes).

Elasticsearch answers every failure as
``{"error": {"root_cause": [{"type", "reason"}], "type", "reason"}, "status": N}``; clients
(elasticsearch-py's ``ApiError``, LangChain) read ``type`` and ``reason`` from there, so every
error this server sends, whichever layer raises it, goes through ``ApiError``.
"""

from __future__ import annotations

from typing import Any, Mapping

OPENAI_ERROR_TYPES = {401: "authentication_error", 404: "invalid_request_error"}
"""status -> OpenAI's error ``type`` where it is not ``invalid_request_error`` (4xx) or
``server_error`` (5xx)."""


class ApiError(Exception):
    """A failure with the HTTP status, Elasticsearch exception type and reason to answer."""

    def __init__(
        self, status: int, error_type: str, reason: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.headers = dict(headers or {})

    def elasticsearch_body(self) -> dict[str, Any]:
        cause = {"type": self.error_type, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}

    def openai_body(self) -> dict[str, Any]:
        default = "invalid_request_error" if self.status < 500 else "server_error"
        return {
            "error": {
                "message": self.reason,
                "type": OPENAI_ERROR_TYPES.get(self.status, default),
                "param": None,
                "code": self.error_type,
            }
        }


def endpoint_not_found(inference_id: str) -> ApiError:
    return ApiError(404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]")


def endpoint_exists(inference_id: str) -> ApiError:
    return ApiError(400, "status_exception", f"Inference endpoint [{inference_id}] already exists")


def validation_failed(problem: str) -> ApiError:
    """Elasticsearch's request-validation failure, worded as its ``ActionRequestValidationException``."""
    return ApiError(400, "action_request_validation_exception", f"Validation Failed: 1: {problem};")


def bad_request(reason: str, error_type: str = "status_exception") -> ApiError:
    return ApiError(400, error_type, reason)


def parse_failure(reason: str) -> ApiError:
    return ApiError(400, "x_content_parse_exception", reason)
