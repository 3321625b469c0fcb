"""OpenSearch: ``rank_features`` fields, searched with one linear ``rank_feature`` clause per
query token, whose summed score is the dot product (OpenSearch has no ``sparse_vector``);
``knn_vector`` fields, searched with the k-NN plugin's ``knn`` query."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from inference_enrich.indexes.cluster import ClusterIndex
from inference_enrich.indexes.settings import IndexSettings


class OpenSearchIndex(ClusterIndex):
    sparse_field_type = "rank_features"
    engine = "OpenSearch"
    connection_errors = (OpenSearchConnectionError,)  # SSLError and ConnectionTimeout included
    answer_errors = (TransportError,)  # any other answer the client raises for
    not_found_errors = (NotFoundError,)
    bad_request_errors = (RequestError,)

    def new_client(self, url: str, **options: Any) -> OpenSearch:
        return OpenSearch(hosts=[url], **options)

    def timeout_option(self, seconds: float) -> dict:
        return {"timeout": seconds}

    def api_key_option(self, api_key: str) -> dict:
        # OpenSearch's security plugin takes API keys (3.7+) as ``Authorization: ApiKey``;
        # opensearch-py has no option for it, so it is a header.
        return {"headers": {"Authorization": f"ApiKey {api_key}"}}

    def basic_auth_option(self, username: str, password: str) -> dict:
        return {"http_auth": (username, password)}

    def tls_options(self, settings: IndexSettings) -> dict:
        return {"use_ssl": True, "verify_certs": settings.verify_certs,
                **({"ca_certs": settings.ca_certs} if settings.ca_certs else {})}

    client_retried_item_status = (429,)  # opensearch-py's helper has no retry_on_status

    def streaming_bulk(self, actions: Iterable[dict], retry_on_status: tuple[int, ...],
                       **kwargs: Any) -> Iterator[tuple[bool, dict]]:
        """opensearch-py's helper retries items answered 429 only; ``bulk`` resends the
        items it hands back answered 502-504."""
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
