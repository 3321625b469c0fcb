"""Elasticsearch: ``sparse_vector`` fields and the ``sparse_vector`` query (ES 8.15+);
``dense_vector`` fields (cosine) and the ``knn`` query."""

from __future__ import annotations

from typing import Iterable, Iterator

import elastic_transport
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

from inference_enrich.indexes.cluster import MAX_RETRIES, RETRY_ON_STATUS, ClusterIndex
from inference_enrich.indexes.settings import IndexSettings
from inference_enrich.inference.secrets import reveal


class ElasticsearchIndex(ClusterIndex):
    sparse_field_type = "sparse_vector"
    engine = "Elasticsearch"
    connection_errors = (elastic_transport.ConnectionError,)  # TLS errors included
    not_found_errors = (NotFoundError,)
    bad_request_errors = (BadRequestError,)
    num_candidates = 100  # per shard; at least top_k

    def connect(self, settings: IndexSettings, url: str) -> Elasticsearch:
        options: dict = {
            "retry_on_status": RETRY_ON_STATUS,
            "max_retries": MAX_RETRIES,
            "retry_on_timeout": True,
            "request_timeout": 60,
        }
        if settings.api_key:
            options["api_key"] = reveal(settings.api_key)
        elif settings.username:
            options["basic_auth"] = (settings.username, reveal(settings.password) or "")
        if url.startswith("https"):
            options["verify_certs"] = settings.verify_certs
            if settings.ca_certs:
                options["ca_certs"] = settings.ca_certs
        return Elasticsearch(url, **options)

    def streaming_bulk(self, actions: Iterable[dict], **kwargs) -> Iterator[tuple[bool, dict]]:
        return helpers.streaming_bulk(self._client, actions, **kwargs)

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}, {}

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        return {"sparse_vector": {"field": field, "query_vector": query_vector}}

    def knn_query(self, query_vector: list[float], field: str, top_k: int) -> dict:
        """The ``knn`` query (ES 8.12+; inside ``nested`` it ranks documents by their best
        chunk), which can stand where any query does: in a ``nested`` query or a retriever."""
        return {"knn": {"field": field, "query_vector": query_vector, "k": top_k,
                        "num_candidates": max(self.num_candidates, top_k)}}
