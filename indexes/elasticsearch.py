"""Elasticsearch: ``sparse_vector`` fields and the ``sparse_vector`` query (ES 8.15+);
``dense_vector`` fields (cosine) and the ``knn`` query."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import elastic_transport
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, UnsupportedProductError, helpers

from inference_enrich.indexes.base import Hit, QueryVector
from inference_enrich.indexes.cluster import ClusterIndex
from inference_enrich.indexes.fusion import RANK_CONSTANT
from inference_enrich.indexes.settings import IndexSettings


class ElasticsearchIndex(ClusterIndex):
    sparse_field_type = "sparse_vector"
    engine = "Elasticsearch"
    connection_errors = (elastic_transport.ConnectionError,)  # TLS errors included
    answer_errors = (elastic_transport.ApiError,)  # UnsupportedProductError included
    not_found_errors = (NotFoundError,)
    bad_request_errors = (BadRequestError,)
    num_candidates = 100  # per shard; at least top_k

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

    def streaming_bulk(self, actions: Iterable[dict], retry_on_status: tuple[int, ...],
                       **kwargs: Any) -> Iterator[tuple[bool, dict]]:
        yield from helpers.streaming_bulk(self._client, actions, retry_on_status=retry_on_status, **kwargs)

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}, {}

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        return {"sparse_vector": {"field": field, "query_vector": query_vector}}

    def knn_query(self, query_vector: list[float], field: str, top_k: int) -> dict:
        """The ``knn`` query (ES 8.12+; inside ``nested`` it ranks documents by their best
        chunk), which can stand where any query does: in a ``nested`` query or a retriever."""
        return {"knn": {"field": field, "query_vector": query_vector, "k": top_k,
                        "num_candidates": max(self.num_candidates, top_k)}}

    def search_hybrid(self, text: str, query_vector: QueryVector, text_field: str, field: str | None,
                      top_k: int, rank_window_size: int, rank_constant: int = RANK_CONSTANT) -> list[Hit]:
        """Elasticsearch's own ``rrf`` retriever over a ``match`` query and the vector query.
        (Hits of a chunked index name no best chunk: ``inner_hits`` do not pass through it.)"""
        window = max(rank_window_size, top_k)
        with self._reaching(), self._searching():
            field = self._output_field(field)
            semantic, chunked = self.semantic_query(query_vector, field, window)
            retrievers = [{"standard": {"query": {"match": {text_field: text}}}}, {"standard": {"query": semantic}}]
            response = self._client.search(index=self._name, body={
                "retriever": {"rrf": {"retrievers": retrievers, "rank_constant": rank_constant,
                                      "rank_window_size": window}},
                "size": top_k, "_source": {"excludes": [self._vectors(field, chunked)]}})
        return self._hits(response, field, chunked)
