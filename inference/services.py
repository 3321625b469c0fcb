"""The services an endpoint can name, and the settings each takes: pydantic models of the
``service_settings`` and ``task_settings`` blocks of a create-endpoint body, and ``SERVICES``,
the one place that says how texts go to each service (``Service``).

Unknown keys, wrong types and out-of-range values are errors; a field's description says
what a valid value is, and the error quotes it (``endpoints.py`` reports it). The remote
services' models are declared in ``inference/remote/settings.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from inference_enrich.inference.models import BUILT_IN_MODELS, is_known_model_id
from inference_enrich.inference.remote.settings import (
    ELASTICSEARCH_REMOTE,
    OPENAI,
    RERANK_API,
    ElasticsearchRemoteServiceSettings,
    NoTaskSettings,
    OpenAIServiceSettings,
    OpenAITaskSettings,
    RerankApiServiceSettings,
)
from inference_enrich.inference.results import RERANK, SPARSE_EMBEDDING, TASK_TYPES, TEXT_EMBEDDING
from inference_enrich.inference.validation import InvalidSetting


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
