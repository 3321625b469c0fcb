"""OpenSearch: ``rank_features`` fields, searched with one linear ``rank_feature`` clause per
query token, whose summed score is the dot product (OpenSearch has no ``sparse_vector``);
``knn_vector`` fields, searched with the k-NN plugin's ``knn`` query."""

from __future__ import annotations

from typing import Iterable, Iterator

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, RequestError

from inference_enrich.indexes.cluster import MAX_RETRIES, RETRY_ON_STATUS, ClusterIndex
from inference_enrich.indexes.settings import IndexSettings
from inference_enrich.inference.secrets import reveal


class OpenSearchIndex(ClusterIndex):
    sparse_field_type = "rank_features"
    engine = "OpenSearch"
    connection_errors = (OpenSearchConnectionError,)  # SSLError and ConnectionTimeout included
    not_found_errors = (NotFoundError,)
    bad_request_errors = (RequestError,)

    def connect(self, settings: IndexSettings, url: str) -> OpenSearch:
        options: dict = {
            "retry_on_status": RETRY_ON_STATUS,
            "max_retries": MAX_RETRIES,
            "retry_on_timeout": True,
            "timeout": 60,
        }
        if settings.username:
            options["http_auth"] = (settings.username, reveal(settings.password) or "")
        if url.startswith("https"):
            options.update(use_ssl=True, verify_certs=settings.verify_certs)
            if settings.ca_certs:
                options["ca_certs"] = settings.ca_certs
        return OpenSearch(hosts=[url], **options)

    def streaming_bulk(self, actions: Iterable[dict], **kwargs) -> Iterator[tuple[bool, dict]]:
        return helpers.streaming_bulk(self._client, actions, **kwargs)

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        return {"type": "knn_vector", "dimension": dims}, {"index": {"knn": True}}

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        return {
            "bool": {
                "should": [
                    {"rank_feature": {"field": f"{field}.{token}", "linear": {}, "boost": weight}}
                    for token, weight in query_vector.items()
                ]
            }
        }

    def knn_query(self, query_vector: list[float], field: str, top_k: int) -> dict:
        """The k-NN plugin's ``knn`` query. A server without the plugin refuses it (osmem-server
        does: "[knn] query is not supported"); the search then fails with that reason."""
        return {"knn": {field: {"vector": query_vector, "k": top_k}}}
