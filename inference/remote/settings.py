"""The settings of remote inference services, declared as the local service's are.

Two services call a model someone else runs:

* ``openai``: any OpenAI-compatible ``POST /v1/embeddings`` (OpenAI, Azure OpenAI, vLLM,
  TEI, infinity, Ollama, ``enrich serve``), for ``text_embedding``.
* ``elasticsearch_remote``: an inference endpoint that already exists on an Elasticsearch
  cluster (``POST _inference/{task_type}/{inference_id}``: ELSER, E5, or any service the
  cluster proxies), for ``sparse_embedding`` and ``text_embedding``. Not ``elasticsearch``:
  in Elasticsearch that service name means "deploy a model inside this cluster", which is
  not what this does.

Both share ``RemoteServiceSettings``: rate limit, inputs per request, requests in flight,
timeout and retries. Credentials are ``SecretStr`` from the moment they are read (see
``inference/secrets.py``); a setting ``*_env`` names an environment variable that holds
the credential instead, read where the client is built (each worker process), so the
secret is neither in the config file nor in the pipeline's serialized graph.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from inference_enrich.inference.secrets import redact_url
from inference_enrich.inference.validation import InvalidSetting

OPENAI = "openai"
ELASTICSEARCH_REMOTE = "elasticsearch_remote"
RERANK_API = "rerank_api"
OPENAI_EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"

DEFAULT_REQUESTS_PER_MINUTE = {OPENAI: 3000, ELASTICSEARCH_REMOTE: 1000, RERANK_API: 10000}
"""Elasticsearch's defaults: its ``openai`` service allows 3000 embedding requests a minute;
for a remote cluster we take 1000, the default of its Elastic Inference Service (``elastic``,
ELSER on a managed cluster), the closest of its services to this one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RateLimit(_Strict):
    """Elasticsearch's ``rate_limit`` block."""

    requests_per_minute: int = Field(gt=0, description="a positive integer (requests a minute, per worker process)")


class RemoteServiceSettings(_Strict):
    """What every remote service takes: its URL, and how it is called (credentials are the
    service's own)."""

    url: str = Field(min_length=1, description="an http:// or https:// URL")

    rate_limit: RateLimit | None = Field(
        None, description="{requests_per_minute: a positive integer} (per worker process; "
                           "default: the service's, as Elasticsearch)")
    max_inputs_per_request: int = Field(
        16, ge=1, le=2048, description="an integer from 1 to 2048 (texts sent in one request)")
    max_concurrent_requests: int = Field(
        4, ge=1, le=256, description="an integer from 1 to 256 (requests in flight per worker process)")
    timeout_s: float = Field(60.0, gt=0, description="a number > 0 (seconds one request may take)")
    max_retries: int = Field(
        6, ge=0, le=20, description="an integer from 0 to 20 (retries of a request on 429, 5xx, timeouts)")
    initial_backoff_s: float = Field(
        0.5, gt=0, description="a number > 0 (first retry's wait cap; doubles each retry, jittered)")
    max_backoff_s: float = Field(30.0, gt=0, description="a number > 0 (longest wait between retries)")

    def requests_per_minute(self, service: str) -> int:
        return self.rate_limit.requests_per_minute if self.rate_limit else DEFAULT_REQUESTS_PER_MINUTE[service]

    @model_validator(mode="after")
    def _url_is_http(self) -> "RemoteServiceSettings":
        if not self.url.startswith(("http://", "https://")):
            raise InvalidSetting("url", f"expected an http:// or https:// URL, got {redact_url(self.url)!r}")
        return self


def secret_from(value: SecretStr | None, env_name: str | None, setting: str) -> str | None:
    """The credential itself: ``value``, else the environment variable ``env_name``.

    Raises ``ValueError`` naming the variable (never a value) when it is named but unset."""
    if value is not None:
        return value.get_secret_value()
    if env_name is None:
        return None
    found = os.environ.get(env_name)
    if not found:
        raise ValueError(f"{setting}: the environment variable {env_name} is not set")
    return found


class OpenAIServiceSettings(RemoteServiceSettings):
    """``service: openai``: an OpenAI-compatible embeddings route."""

    url: str = Field(OPENAI_EMBEDDINGS_URL, min_length=1,
                     description="the full URL of the embeddings route (an http:// or https:// URL)")
    model_id: str = Field(min_length=1, description="the model name the server knows")
    api_key: SecretStr | None = Field(None, description="the API key (sent as a Bearer token)")
    api_key_env: str | None = Field(
        None, min_length=1, description="the name of an environment variable holding the API key")
    dimensions: int | None = Field(None, gt=0, description="a positive integer (ask for shorter vectors)")
    organization_id: str | None = Field(None, min_length=1, description="the OpenAI organization id")

    @model_validator(mode="after")
    def _one_key_source(self) -> "OpenAIServiceSettings":
        if self.api_key is not None and self.api_key_env is not None:
            raise InvalidSetting("api_key_env", "give api_key or api_key_env, not both")
        return self

    def resolved_api_key(self) -> str | None:
        return secret_from(self.api_key, self.api_key_env, "api_key_env")


class OpenAITaskSettings(_Strict):
    """``task_settings`` of an ``openai`` endpoint."""

    user: str | None = Field(None, min_length=1, description="an end-user id passed to the service")


class ElasticsearchRemoteServiceSettings(RemoteServiceSettings):
    """``service: elasticsearch_remote``: an endpoint of an Elasticsearch cluster."""

    url: str = Field(min_length=1, description="the cluster's URL, e.g. https://host:9200")
    inference_id: str = Field(min_length=1, description="the inference id of the endpoint on the cluster")
    api_key: SecretStr | None = Field(None, description="an Elasticsearch API key (encoded)")
    api_key_env: str | None = Field(
        None, min_length=1, description="the name of an environment variable holding the API key")
    username: str | None = Field(None, min_length=1, description="a user for basic authentication")
    password: SecretStr | None = Field(None, description="the user's password")
    password_env: str | None = Field(
        None, min_length=1, description="the name of an environment variable holding the password")
    ca_certs: str | None = Field(None, min_length=1, description="a PEM file of CA certificates to trust")
    verify_certs: bool = Field(True, description="true or false (check the server's certificate)")

    @model_validator(mode="after")
    def _one_credential(self) -> "ElasticsearchRemoteServiceSettings":
        if self.api_key is not None and self.api_key_env is not None:
            raise InvalidSetting("api_key_env", "give api_key or api_key_env, not both")
        if self.password is not None and self.password_env is not None:
            raise InvalidSetting("password_env", "give password or password_env, not both")
        has_password = self.password is not None or self.password_env is not None
        if has_password != (self.username is not None):
            raise InvalidSetting("username", "basic authentication needs both username and a password")
        if has_password and (self.api_key is not None or self.api_key_env is not None):
            raise InvalidSetting("api_key", "give an API key or a username and password, not both")
        return self

    def resolved_api_key(self) -> str | None:
        return secret_from(self.api_key, self.api_key_env, "api_key_env")

    def resolved_password(self) -> str | None:
        return secret_from(self.password, self.password_env, "password_env")


class NoTaskSettings(_Strict):
    """A remote Elasticsearch endpoint applies its own task settings."""


class RerankApiServiceSettings(RemoteServiceSettings):
    """``service: rerank_api``: a Cohere/Jina-style rerank route (inference/remote/rerank.py)."""

    url: str = Field(min_length=1, description="the full URL of the rerank route, e.g. http://host:7997/rerank")
    model_id: str | None = Field(None, min_length=1, description="the model name the server knows (sent as model)")
    api_key: SecretStr | None = Field(None, description="the API key (sent as a Bearer token)")
    api_key_env: str | None = Field(
        None, min_length=1, description="the name of an environment variable holding the API key")

    @model_validator(mode="after")
    def _one_key_source(self) -> "RerankApiServiceSettings":
        if self.api_key is not None and self.api_key_env is not None:
            raise InvalidSetting("api_key_env", "give api_key or api_key_env, not both")
        return self
