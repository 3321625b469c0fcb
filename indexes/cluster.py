"""What Elasticsearch and OpenSearch clusters share: index creation, bulk writes, searches.

Bulk writes follow elasticsearch-py's ``helpers.streaming_bulk``: actions are generated
lazily, sent in chunks, 429 answers for single items are retried with exponential backoff,
and every item's outcome comes back to the caller, so a rejected document becomes a dead
letter instead of vanishing. Whole-request failures (connection errors, 5xx) are retried by
the client's transport; if they persist the exception propagates and Beam retries the bundle.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from inference_enrich.indexes.base import DEFAULT_OUTPUT_FIELD, BulkOutcome, Hit, IndexSpec
from inference_enrich.indexes.settings import DEFAULT_URLS, IndexSettings
from inference_enrich.inference.results import SPARSE_EMBEDDING

RETRY_ON_STATUS = (429, 500, 502, 503, 504)
MAX_RETRIES = 5
BULK_CHUNK = 500


class ClusterIndex:
    """Base class: subclasses give the client, the field types and the query shape."""

    sparse_field_type = ""
    engine = ""

    def __init__(self, settings: IndexSettings) -> None:
        self._settings = settings
        self._name = settings.index
        self._url = settings.url or DEFAULT_URLS[settings.kind]
        self._client = self.connect(settings, self._url)

    # -- subclass hooks ------------------------------------------------------------------
    def connect(self, settings: IndexSettings, url: str):
        raise NotImplementedError

    def streaming_bulk(self, actions: Iterable[dict], **kwargs) -> Iterator[tuple[bool, dict]]:
        raise NotImplementedError

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        """(field mapping, index settings) for a dense output field."""
        raise NotImplementedError

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------------------
    def ensure_index(self, spec: IndexSpec) -> None:
        if spec.task_type == SPARSE_EMBEDDING:
            output_mapping, index_settings = {"type": self.sparse_field_type}, {}
        else:
            output_mapping, index_settings = self.dense_mapping(spec.dims or 0)
        if self._client.indices.exists(index=self._name):
            self._check_mapping(spec.output_field, output_mapping["type"])
            return
        body: dict[str, Any] = {
            "mappings": {
                "properties": {
                    spec.output_field: output_mapping,
                    spec.text_field: {"type": "text"},
                    "is_truncated": {"type": "boolean"},
                }
            }
        }
        if index_settings:
            body["settings"] = index_settings
        try:
            self._client.indices.create(index=self._name, body=body)
        except Exception as error:  # another worker created it first: fine
            if "resource_already_exists" not in str(error):
                raise

    def _check_mapping(self, field: str, expected: str) -> None:
        mapping = self._client.indices.get_mapping(index=self._name)
        properties = next(iter(dict(mapping).values()))["mappings"].get("properties", {})
        actual = properties.get(field, {}).get("type")
        if actual is not None and actual != expected:
            raise ValueError(
                f"{self.engine} index '{self._name}' maps '{field}' as {actual}, not {expected}: "
                "choose another --index or output field"
            )

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        actions = (
            {"_op_type": "index", "_index": self._name, "_id": doc_id, "_source": source}
            for doc_id, source in documents
        )
        for ok, item in self.streaming_bulk(
            actions,
            chunk_size=BULK_CHUNK,
            max_retries=MAX_RETRIES,
            initial_backoff=1,
            max_backoff=30,
            raise_on_error=False,
            yield_ok=True,
        ):
            result = item.get("index", item)
            if ok:
                yield BulkOutcome(str(result.get("_id")))
            else:
                error = json.dumps(result.get("error"), ensure_ascii=False)
                yield BulkOutcome(str(result.get("_id")), f"{self.engine} rejected the document "
                                  f"(status {result.get('status')}): {error}")

    def search(self, query_vector: dict[str, float], field: str | None, top_k: int) -> list[Hit]:
        field = field or DEFAULT_OUTPUT_FIELD
        response = self._client.search(
            index=self._name,
            body={"query": self.sparse_query(query_vector, field), "size": top_k,
                  "_source": {"excludes": [field]}},
        )
        return [
            Hit(str(hit["_id"]), float(hit["_score"]), hit.get("_source", {}))
            for hit in response["hits"]["hits"]
        ]

    def count(self) -> int:
        self._client.indices.refresh(index=self._name)
        return int(self._client.count(index=self._name)["count"])

    def close(self) -> None:
        self._client.close()
