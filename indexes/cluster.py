"""What Elasticsearch and OpenSearch clusters share, one module per job:

- ``cluster_client``: the client's options (transport retries, timeout, credentials, TLS)
  and one-line errors for a cluster that cannot be reached (``IndexUnreachable``) or answers
  as something else (``IndexRefused``);
- ``cluster_mapping``: index creation with our mapping (nested for chunked outputs), checks
  of an existing one, the fields it was written with;
- ``cluster_bulk``: bulk writes through the client's ``streaming_bulk`` and its item retries,
  with every outcome matched to its document by ``_id``;
- ``cluster_search``: vector and text searches, best chunks of chunked indexes; fused
  (hybrid) searches are ``ClusterIndex``'s own, below.

``elasticsearch.py`` and ``opensearch.py`` subclass ``ClusterIndex`` and spell the options,
field types and queries of their engine.
"""

from __future__ import annotations

from inference_enrich.indexes.base import Hit, QueryVector
from inference_enrich.indexes.cluster_bulk import ClusterBulk
from inference_enrich.indexes.cluster_search import ClusterSearch
from inference_enrich.indexes.fusion import RANK_CONSTANT, hybrid_by_fusion


class ClusterIndex(ClusterSearch, ClusterBulk):
    """A ``SearchIndex`` on a cluster; subclasses give the client, the field types and the
    query shapes."""

    def search_hybrid(self, text: str, query_vector: QueryVector, text_field: str, field: str | None,
                      top_k: int, rank_window_size: int, rank_constant: int = RANK_CONSTANT) -> list[Hit]:
        """Our fusion of a ``match`` and a vector search (OpenSearch's own hybrid query needs a
        search pipeline made beforehand; osmem-server has neither)."""
        return hybrid_by_fusion(self, text, query_vector, text_field, field, top_k, rank_window_size,
                                rank_constant)
