"""Elasticsearch: ``sparse_vector`` fields and the ``sparse_vector`` query (ES 8.15+)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import elastic_transport
from elasticsearch import Elasticsearch, UnsupportedProductError, helpers

from inference_enrich.indexes.cluster import ClusterIndex
from inference_enrich.indexes.settings import IndexSettings


class ElasticsearchIndex(ClusterIndex):
    sparse_field_type = "sparse_vector"
    engine = "Elasticsearch"
    connection_errors = (elastic_transport.ConnectionError,)  # TLS errors included
    answer_errors = (elastic_transport.ApiError,)  # UnsupportedProductError included

    def is_engine_answer(self, error: Exception) -> bool:
        return not isinstance(error, UnsupportedProductError)

    def new_client(self, url: str, **options: Any) -> Elasticsearch:
        return Elasticsearch(url, **options)

    def timeout_option(self, seconds: float) -> dict:
        return {"request_timeout": seconds}

    def api_key_option(self, api_key: str) -> dict:
        return {"api_key": api_key}  # sent as ``Authorization: ApiKey <key>``

    def basic_auth_option(self, username: str, password: str) -> dict:
        return {"basic_auth": (username, password)}

    def tls_options(self, settings: IndexSettings) -> dict:
        return {"verify_certs": settings.verify_certs,
                **({"ca_certs": settings.ca_certs} if settings.ca_certs else {})}

    def streaming_bulk(self, actions: Iterable[dict], **kwargs) -> Iterator[tuple[bool, dict]]:
        return helpers.streaming_bulk(self._client, actions, **kwargs)

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}, {}

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        return {"sparse_vector": {"field": field, "query_vector": query_vector}}
