"""Search indexes enriched records are written to and searched in, free of Beam:
Elasticsearch (``sparse_vector``), OpenSearch (``rank_features``) and an embedded index in a
local directory (qdrant-edge). ``open_index`` builds any of them from ``IndexSettings``."""

from inference_enrich.indexes.base import BestChunk, BulkOutcome, Hit, IndexSpec, SearchIndex
from inference_enrich.indexes.settings import IndexSettings, open_index

__all__ = ["BestChunk", "BulkOutcome", "Hit", "IndexSpec", "SearchIndex", "IndexSettings", "open_index"]
