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
the endpoint and the key in the message, not hours into a job. Each block of the body is a
pydantic model declared once below (unknown keys, wrong types and out-of-range values are
errors); a field's description says what a valid value is, and the error quotes it.
``Endpoint.from_body`` applies the same checks to a body sent over HTTP, ``to_body`` gives it
back in the same shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inference_enrich.inference.chunking import ChunkingSettings, parse_chunking_settings
from inference_enrich.inference.errors import (
    EndpointConfigError,
    IncompatibleTaskTypeError,
    UnknownEndpointError,
)
from inference_enrich.inference.models import BUILT_IN_MODELS, is_known_model_id
from inference_enrich.inference.remote.settings import (
    ELASTICSEARCH_REMOTE,
    OPENAI,
    ElasticsearchRemoteServiceSettings,
    NoTaskSettings,
    RERANK_API,
    RerankApiServiceSettings,
    OpenAIServiceSettings,
    OpenAITaskSettings,
)
from inference_enrich.inference.results import RERANK, SPARSE_EMBEDDING, TASK_TYPES, TEXT_EMBEDDING
from inference_enrich.inference.secrets import reveal
from inference_enrich.inference.validation import InvalidSetting, setting_problems, yaml_problem


class Settings(BaseModel):
    """One block of an endpoint body. Validated with the endpoint's task type as context
    (``info.context["task_type"]``) for rules that depend on it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TransformersServiceSettings(Settings):
    """``service: transformers``: a Hugging Face model run locally, inside each worker."""

    model_id: str = Field(
        min_length=1,
        description=f"a built-in alias ({', '.join(sorted(BUILT_IN_MODELS))}), a local directory or a hub id",
    )
    max_sequence_length: int | None = Field(
        None, ge=2, description="an integer >= 2 (tokens, special tokens included)"
    )
    quantization: Literal["none", "int8"] = Field(
        "none",
        description="'none' (exact, the default) or 'int8' (sparse_embedding only: faster, approximate)",
    )

    @field_validator("model_id")
    @classmethod
    def _model_exists(cls, model_id: str) -> str:
        if not is_known_model_id(model_id):
            expected = cls.model_fields["model_id"].description
            raise ValueError(f"unknown model '{model_id}' (expected {expected})")
        return model_id

    @model_validator(mode="after")
    def _quantization_fits_task_type(self, info: ValidationInfo) -> "TransformersServiceSettings":
        task_type = (info.context or {}).get("task_type")
        if self.quantization != "none" and task_type != SPARSE_EMBEDDING:
            raise InvalidSetting("quantization", f"only 'none' is available for {task_type}")
        return self


class SparseEmbeddingTaskSettings(Settings):
    """Pruning of sparse results."""

    top_k: int | None = Field(None, gt=0, description="a positive integer (keep the k highest weights)")
    min_weight: float | None = Field(None, ge=0, description="a number >= 0 (drop smaller weights)")


class TextEmbeddingTaskSettings(Settings):
    """text_embedding endpoints take no task settings."""


class RerankTaskSettings(Settings):
    """Defaults of a rerank request (the request's own win)."""

    top_n: int | None = Field(None, gt=0, description="a positive integer (keep the n most relevant)")
    return_documents: bool | None = Field(None, description="true (default) or false: answer with each text")


TASK_SETTINGS: dict[str, type[Settings]] = {
    SPARSE_EMBEDDING: SparseEmbeddingTaskSettings,
    TEXT_EMBEDDING: TextEmbeddingTaskSettings,
    RERANK: RerankTaskSettings,
}


@dataclass(frozen=True)
class Service:
    """A service an endpoint can name: the model of its ``service_settings``, its task types
    and, when the service has its own, the model of its ``task_settings`` (else the task
    type's, ``TASK_SETTINGS``)."""

    settings: type[BaseModel]
    task_types: tuple[str, ...]
    task_settings: type[BaseModel] | None = None
    tokenizes_locally: bool = True
    """True: the model runs in this process, whose tokenizer counts, chunks
    (``chunking_settings`` apply) and batches the texts by tokens. False: the service runs
    the model and takes whole texts by count; only it knows the tokens (it may report them).
    The runtime the factory (``api.load_runtime``) builds for the endpoint says the same."""
    task_settings_in_requests: bool = False
    """True: the endpoint's ``task_settings`` go into the service's requests, so they cannot
    be overridden per request and results are not shared with endpoints of other task
    settings. False: they are applied here, to each request's results."""


SERVICES: dict[str, Service] = {
    "transformers": Service(TransformersServiceSettings, TASK_TYPES),
    OPENAI: Service(OpenAIServiceSettings, (TEXT_EMBEDDING,), OpenAITaskSettings, tokenizes_locally=False,
                    task_settings_in_requests=True),
    ELASTICSEARCH_REMOTE: Service(ElasticsearchRemoteServiceSettings, TASK_TYPES, NoTaskSettings,
                                  tokenizes_locally=False, task_settings_in_requests=True),
    RERANK_API: Service(RerankApiServiceSettings, (RERANK,), tokenizes_locally=False,
                        task_settings_in_requests=True),
}
"""service name -> Service: the one place that says which services run their model here
and which elsewhere (everyone else asks ``Endpoint.service_info`` or the runtime). The
remote ones' settings are declared in ``inference/remote/settings.py`` (credentials held as
``SecretStr``)."""


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


class EndpointRegistry:
    """The endpoints of one configuration file, looked up by inference id."""

    def __init__(self, endpoints: Mapping[str, Endpoint], source: str) -> None:
        self._endpoints = dict(endpoints)
        self.source = source

    def __iter__(self):
        return iter(self._endpoints.values())

    def __len__(self) -> int:
        return len(self._endpoints)

    def get(self, inference_id: str, task_type: str | None = None) -> Endpoint:
        """The endpoint called ``inference_id``; checks ``task_type`` when one is given."""
        try:
            endpoint = self._endpoints[inference_id]
        except KeyError:
            known = ", ".join(sorted(self._endpoints)) or "none"
            raise UnknownEndpointError(
                f"Inference endpoint not found [{inference_id}] in {self.source} "
                f"(configured: {known})"
            ) from None
        if task_type is not None:
            endpoint.require_task_type(task_type)
        return endpoint


def default_endpoints_path() -> Path:
    """The endpoints file that ships with the package (``configs/endpoints.yaml``)."""
    return Path(str(resources.files("inference_enrich.configs") / "endpoints.yaml"))


def load_endpoints(path: str | Path | None = None) -> EndpointRegistry:
    """The packaged endpoints overlaid by ``path``'s (which must exist), or by the default
    endpoint store's when ``path`` is None (see ``endpoint_store``: the one store every
    command reads)."""
    from inference_enrich.inference.endpoint_store import load_store

    return load_store(path)


def read_endpoints_file(path: str | Path) -> EndpointRegistry:
    """Read and validate one endpoints YAML file, alone."""
    return parse_endpoints(read_endpoints_document(Path(path)), source=str(path))


def read_endpoints_document(path: Path) -> Any:
    """An endpoints file's YAML, parsed but not validated; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EndpointConfigError(f"{path}: cannot read endpoints file: {error}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EndpointConfigError(f"{path}: not valid YAML: {yaml_problem(error)}") from None


def parse_endpoints(document: Any, source: str) -> EndpointRegistry:
    """Validate an already-parsed endpoints document; ``source`` names it in errors."""
    if not isinstance(document, dict) or set(document) != {"endpoints"}:
        raise EndpointConfigError(f"{source}: expected a single top-level key 'endpoints'")
    entries = document["endpoints"]
    if not isinstance(entries, dict) or not entries:
        raise EndpointConfigError(f"{source}: 'endpoints' must map inference ids to endpoints")
    endpoints = {
        str(inference_id): Endpoint.from_body(str(inference_id), body, source=source)
        for inference_id, body in entries.items()
    }
    return EndpointRegistry(endpoints, source)
