"""Inference endpoints: the YAML mirror of Elasticsearch's create-endpoint body.

``PUT _inference/<task_type>/<inference_id>`` takes ``service``, ``service_settings`` and
``task_settings``; ``configs/endpoints.yaml`` holds the same body per inference id::

    endpoints:
      my-elser-model:
        task_type: sparse_embedding
        service: transformers
        service_settings: {model_id: splade-tiny, max_sequence_length: 512}
        task_settings: {top_k: 100}
        chunking_settings: {strategy: sentence, max_chunk_size: 250, sentence_overlap: 1}

Everything is validated when the file is loaded, so a typo fails at start-up with the file,
the endpoint and the key in the message, not hours into a job. Each settings block of the
body is a pydantic model of its service (``services.py``); a field's description says what a
valid value is, and the error quotes it. ``Endpoint.from_body`` applies the same checks to a
body sent over HTTP, ``to_body`` gives it back in the same shape; ``endpoint_files.py``
reads a file of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ValidationError

from inference_enrich.inference.chunking import ChunkingSettings, parse_chunking_settings
from inference_enrich.inference.errors import EndpointConfigError, IncompatibleTaskTypeError
from inference_enrich.inference.results import RERANK, TASK_TYPES
from inference_enrich.inference.secrets import reveal
from inference_enrich.inference.services import SERVICES, TASK_SETTINGS, Service, Settings
from inference_enrich.inference.validation import setting_problems


class EndpointBody(Settings):
    """The body of ``PUT _inference/<task_type>/<inference_id>`` (and one endpoints.yaml entry).

    ``task_type`` and ``service`` choose the models that check the two settings blocks.
    ``chunking_settings`` is checked by ``inference/chunking`` with Elasticsearch's own
    rules and messages (not a pydantic model: ES reports every problem at once, its way).
    """

    task_type: str | None = None  # may come from the URL path instead
    service: str
    service_settings: dict[str, Any]
    task_settings: dict[str, Any] | None = None
    chunking_settings: Any = None  # absent or null: no chunking; {}: ES's default


@dataclass(frozen=True)
class Endpoint:
    """One configured inference endpoint (validated: build it with ``from_body``)."""

    inference_id: str
    task_type: str
    service: str
    service_settings: Mapping[str, Any]
    task_settings: Mapping[str, Any] = field(default_factory=dict)
    chunking_settings: ChunkingSettings | None = None
    """None: each text is embedded whole (cut at the model's limit); else it is cut into
    chunks and embedded chunk by chunk (a ``ChunkedEmbedding``)."""

    @property
    def model_id(self) -> str:
        """The model behind the endpoint, as shown in logs and summaries (for a remote
        Elasticsearch endpoint: the cluster's inference id)."""
        settings = self.service_settings
        return settings["model_id"] if "model_id" in settings else settings["inference_id"]

    @property
    def service_info(self) -> Service:
        """What the endpoint's service is: how texts go to it, where its task settings apply."""
        return SERVICES[self.service]

    def fingerprint(self) -> str:
        """A digest of everything the endpoint says, secrets included: equal for equal
        endpoints, different when only a key differs, and safe to show or use as a key."""
        body = json.dumps([self.inference_id, reveal(self.to_body())], sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()

    def require_task_type(self, task_type: str) -> None:
        """Raise as Elasticsearch does when asked for a task type this endpoint does not do."""
        if task_type != self.task_type:
            raise IncompatibleTaskTypeError(requested=task_type, actual=self.task_type)

    @classmethod
    def from_body(
        cls, inference_id: str, body: Any, task_type: str | None = None, *, source: str | None = None
    ) -> "Endpoint":
        """Validate a create-endpoint body into an Endpoint.

        ``task_type`` is the one of the URL path (``PUT _inference/{task_type}/{id}``), when the
        body comes over HTTP; endpoints.yaml puts it in the body. Raises
        ``EndpointConfigError`` naming ``source`` (a file), the endpoint and the key.
        """
        prefix = f"{source}: " if source else ""

        def fail(key: str, problem: str) -> EndpointConfigError:
            return EndpointConfigError(f"{prefix}endpoint '{inference_id}': {key}: {problem}")

        if not isinstance(body, Mapping):
            raise fail("(body)", "must be a mapping with " + ", ".join(EndpointBody.model_fields))
        parsed = _validate(EndpointBody, body, "", fail)
        if task_type is not None and parsed.task_type not in (None, task_type):
            raise fail("task_type", f"'{parsed.task_type}' in the body differs from '{task_type}' in the path")
        task_type = task_type or parsed.task_type
        if task_type is None:
            raise fail("task_type", "required")
        if task_type not in TASK_TYPES:
            raise fail("task_type", f"unknown task type '{task_type}' (known: {', '.join(TASK_TYPES)})")
        service = SERVICES.get(parsed.service)
        if service is None:
            raise fail("service", f"unknown service '{parsed.service}' (known: {', '.join(SERVICES)})")
        if task_type not in service.task_types:
            raise fail("task_type", f"service '{parsed.service}' cannot do '{task_type}'")
        service_settings = _validate(service.settings, parsed.service_settings, "service_settings",
                                     fail, task_type)
        task_settings = _validate(service.task_settings or TASK_SETTINGS[task_type],
                                  parsed.task_settings or {}, "task_settings", fail, task_type)
        try:
            chunking_settings = parse_chunking_settings(parsed.chunking_settings)
        except EndpointConfigError as error:  # Elasticsearch's message, whole
            raise fail("chunking_settings", str(error)) from None
        if chunking_settings is not None and task_type == RERANK:
            raise fail("chunking_settings", "not supported by the rerank task type (it scores whole texts)")
        if chunking_settings is not None and not service.tokenizes_locally:
            raise fail("chunking_settings", f"not supported by service '{parsed.service}' (texts are "
                       "sent whole; chunk them before the job, or use a local model)")
        return cls(inference_id, task_type, parsed.service,
                   service_settings.model_dump(exclude_unset=True),
                   task_settings.model_dump(exclude_unset=True),
                   chunking_settings)

    def to_body(self) -> dict[str, Any]:
        """The body ``from_body`` accepts (task type included), as endpoints.yaml and
        ``GET _inference`` show it; add ``inference_id`` for the GET shape.
        ``chunking_settings`` appears only on chunking endpoints, with every setting spelled
        out (``{}`` reads back as the default it stands for), as Elasticsearch's GET shows it."""
        body = {
            "task_type": self.task_type,
            "service": self.service,
            "service_settings": dict(self.service_settings),
            "task_settings": dict(self.task_settings),
        }
        if self.chunking_settings is not None:
            body["chunking_settings"] = self.chunking_settings.to_dict()
        return body


def _validate(
    model: type[BaseModel],
    data: Mapping[str, Any],
    section: str,
    fail: Callable[[str, str], EndpointConfigError],
    task_type: str | None = None,
) -> Any:
    """``data`` validated by ``model``; the first mistake raised as ``section.key: problem``."""
    try:
        return model.model_validate(data, context={"task_type": task_type})
    except ValidationError as error:
        key, problem = next(setting_problems(error, model, quote_descriptions=True))
        raise fail(f"{section}.{key}" if section else key, problem) from None
