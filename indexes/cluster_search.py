"""Searches of a cluster index: by vector (sparse, or kNN) and by text (BM25).

Over a chunked index the vector query is wrapped in a ``nested`` query with
``score_mode: max``, so a document scores its best chunk and comes back once, and asks for
that chunk with ``inner_hits`` (size 1). The chunk is read by its position
(``_nested.offset``) from the document's own ``_source``, which carries every chunk's offsets
but no embeddings: servers disagree on how source filtering inside ``inner_hits`` names
nested paths (noida-db relative to the nested object, osmem-server from the root), while
``_nested.offset`` means the same everywhere."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from inference_enrich.indexes.base import (
    CHUNK_EMBEDDING,
    END_OFFSET,
    START_OFFSET,
    BestChunk,
    Hit,
    QueryVector,
    mismatch_error,
)
from inference_enrich.indexes.cluster_mapping import ClusterMapping
from inference_enrich.inference.results import SPARSE_EMBEDDING, TEXT_EMBEDDING


class ClusterSearch(ClusterMapping):
    """Searches and counts; subclasses give the query shapes."""

    not_found_errors: tuple[type[Exception], ...] = ()  # the client's 404
    bad_request_errors: tuple[type[Exception], ...] = ()  # the client's 400

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        raise NotImplementedError

    def knn_query(self, query_vector: list[float], field: str, top_k: int) -> dict:
        """The engine's kNN query for the ``top_k`` nearest dense vectors in ``field``."""
        raise NotImplementedError

    def search(self, query_vector: QueryVector, field: str | None, top_k: int) -> list[Hit]:
        with self._reaching(), self._searching():
            field = self._output_field(field)
            query, chunked = self.semantic_query(query_vector, field, top_k)
            response = self._client.search(index=self._name, body={
                "query": query, "size": top_k, "_source": {"excludes": [self._vectors(field, chunked)]}})
        return self._hits(response, field, chunked)

    def search_text(self, text: str, text_field: str, field: str | None, top_k: int) -> list[Hit]:
        with self._reaching(), self._searching():
            field = self._output_field(field)
            chunked = self._field_mapping(field).get("type") == "nested"
            response = self._client.search(index=self._name, body={
                "query": {"match": {text_field: text}}, "size": top_k,
                "_source": {"excludes": [self._vectors(field, chunked)]}})
        return self._hits(response, field, chunked)

    def semantic_query(self, query_vector: QueryVector, field: str, top_k: int) -> tuple[dict, bool]:
        """The query for ``query_vector`` on ``field`` and whether the field is chunked, after
        checking that the field holds embeddings of the query's kind and size. Over chunks it
        is a ``nested`` query with ``score_mode: max`` and the best chunk as ``inner_hits``."""
        mapping = self._field_mapping(field)
        chunked = mapping.get("type") == "nested"
        self._check_query(field, mapping.get("properties", {}).get(CHUNK_EMBEDDING, {}) if chunked else mapping,
                          query_vector)
        if not chunked:
            return self.vector_query(query_vector, field, top_k), False
        return {"nested": {
            "path": field,
            "query": self.vector_query(query_vector, f"{field}.{CHUNK_EMBEDDING}", top_k),
            "score_mode": "max",
            "inner_hits": {"size": 1, "_source": False},
        }}, True

    def vector_query(self, query_vector: QueryVector, field: str, top_k: int) -> dict:
        if isinstance(query_vector, dict):
            return self.sparse_query(query_vector, field)
        return self.knn_query(query_vector, field, top_k)

    def _check_query(self, field: str, embedding_mapping: dict, query_vector: QueryVector) -> None:
        where = f"{self.engine} index '{self._name}' field '{field}'"
        held_type = embedding_mapping.get("type")
        if held_type is None:
            raise ValueError(f"{self.engine} index '{self._name}' has no embedding field '{field}' "
                             "(--output-field names the field the index was written with)")
        held = SPARSE_EMBEDDING if held_type == self.sparse_field_type else TEXT_EMBEDDING
        error = mismatch_error(where, held, query_vector)
        if error is not None:
            raise error
        dims = embedding_mapping.get("dims") or embedding_mapping.get("dimension")
        if held == TEXT_EMBEDDING and dims and int(dims) != len(query_vector):
            raise ValueError(f"{where} holds {dims}-dimensional vectors; the query's has "
                             f"{len(query_vector)}: search it with the endpoint it was written with")

    @staticmethod
    def _vectors(field: str, chunked: bool) -> str:
        """The source path of the stored embeddings, left out of hits."""
        return f"{field}.{CHUNK_EMBEDDING}" if chunked else field

    @contextmanager
    def _searching(self) -> Iterator[None]:
        """A missing index or a query the server refuses (a kNN query on a server without
        kNN, say) becomes one ``ValueError`` line with the server's reason."""
        try:
            yield
        except self.not_found_errors as error:
            raise ValueError(f"{self._settings.describe()} does not exist: {_reason(error)}") from None
        except self.bad_request_errors as error:
            raise ValueError(f"{self._settings.describe()} refused the search: {_reason(error)}") from None

    def _hits(self, response: dict, field: str, chunked: bool) -> list[Hit]:
        """Hits of a search response. Over chunks the best chunk is read by its position
        (``_nested.offset``) from the document's own ``_source``, which carries every chunk's
        offsets; a hit without ``inner_hits`` (a fused one) names no chunk."""
        hits = []
        for hit in response["hits"]["hits"]:
            source = dict(hit.get("_source", {}))
            best_chunk = None
            if chunked:
                chunks = source.pop(field, [])
                inner = hit.get("inner_hits", {}).get(field, {}).get("hits", {}).get("hits", [])
                if inner:
                    chunk = chunks[inner[0]["_nested"]["offset"]]
                    best_chunk = BestChunk(int(chunk[START_OFFSET]), int(chunk[END_OFFSET]))
            hits.append(Hit(str(hit["_id"]), float(hit["_score"] or 0.0), source, best_chunk))
        return hits

    def count(self) -> int:
        with self._reaching(), self._searching():
            self._client.indices.refresh(index=self._name)
            return int(self._client.count(index=self._name)["count"])


def _reason(error: Exception) -> str:
    """The server's reason for an error answer, else the client's message."""
    body = getattr(error, "body", None) or getattr(error, "info", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or body["error"].get("type"))
    return str(error)
