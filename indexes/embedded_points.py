"""How the embedded index stores documents as qdrant-edge points, and reads them back.

A document is one point; in a chunked index, one point per chunk, carrying the document id
and the chunk's position and offsets, the first chunk's point also carrying the document
(its text and passthrough fields). Point ids are name-based UUIDs of the document id (and
chunk position), so re-runs replace what they wrote. Sparse vectors are keyed by integers:
``vocabulary`` numbers the tokens.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import qdrant_edge as qe

from inference_enrich.indexes.base import CHUNK_EMBEDDING, END_OFFSET, START_OFFSET, BestChunk, Hit, IndexSpec

DOC_ID_KEY = "_doc_id"
CHUNK_POSITION_KEY, START_OFFSET_KEY, END_OFFSET_KEY = "_chunk", "_start_offset", "_end_offset"
"""Payload keys of a chunk's point in a chunked index (not shown in hits)."""
HIDDEN_KEYS = (DOC_ID_KEY, CHUNK_POSITION_KEY, START_OFFSET_KEY, END_OFFSET_KEY)
_ID_NAMESPACE = uuid.UUID("5b0e4a52-3f0c-4c4e-9d59-3a8f1b0c2f11")
CHUNKS_FETCHED = 4
"""A chunked search first takes 4 chunks per document asked for, 4 times more each time the
chunks of fewer documents fill them."""


def point_id(doc_id: str, chunk: int | None = None) -> str:
    """qdrant wants integer or UUID ids; a name-based UUID keeps re-runs idempotent.
    ``chunk``: the position of a chunk in a chunked index."""
    return str(uuid.uuid5(_ID_NAMESPACE, doc_id if chunk is None else json.dumps([doc_id, chunk])))


def points_of(spec: IndexSpec, doc_id: str, source: dict[str, Any], vocabulary: dict[str, int]) -> list[qe.Point]:
    """The points of one document: itself, or one per chunk (the first carrying the document)."""
    field = spec.output_field
    payload = {k: v for k, v in source.items() if k != field}
    payload[DOC_ID_KEY] = doc_id
    if not spec.chunked:
        return [qe.Point(point_id(doc_id), {field: qdrant_vector(source[field], vocabulary)}, payload)]
    points = []
    for position, chunk in enumerate(source[field]):
        chunk_payload = {**(payload if position == 0 else {DOC_ID_KEY: doc_id}), CHUNK_POSITION_KEY: position,
                         START_OFFSET_KEY: chunk[START_OFFSET], END_OFFSET_KEY: chunk[END_OFFSET]}
        vector = {field: qdrant_vector(chunk[CHUNK_EMBEDDING], vocabulary)}
        points.append(qe.Point(point_id(doc_id, position), vector, chunk_payload))
    return points


def search_chunks(shard: qe.EdgeShard, query: qe.Query, top_k: int) -> list[Hit]:
    """The ``top_k`` documents whose best chunks score highest, each with its best chunk."""
    limit = top_k * CHUNKS_FETCHED
    while True:
        chunks = shard.query(qe.QueryRequest(limit=limit, query=query,
                                             with_payload=[DOC_ID_KEY, START_OFFSET_KEY, END_OFFSET_KEY]))
        best: dict[str, Any] = {}  # doc id -> its best chunk: chunks come best first
        for chunk in chunks:
            best.setdefault(point_payload(chunk)[DOC_ID_KEY], chunk)
        if len(best) >= top_k or len(chunks) < limit:
            break
        limit *= CHUNKS_FETCHED
    top = list(best.items())[:top_k]
    first_chunks = shard.retrieve([point_id(doc_id, 0) for doc_id, _ in top], with_payload=True, with_vector=False)
    documents = {payload[DOC_ID_KEY]: payload for payload in map(point_payload, first_chunks)}
    return [
        Hit(doc_id, float(chunk.score), {k: v for k, v in documents[doc_id].items() if k not in HIDDEN_KEYS},
            BestChunk(int(point_payload(chunk)[START_OFFSET_KEY]), int(point_payload(chunk)[END_OFFSET_KEY])))
        for doc_id, chunk in top
    ]


def point_payload(point: Any) -> dict[str, Any]:
    """A retrieved or found point's payload: every query here asks for it."""
    if point.payload is None:
        raise ValueError(f"point {point.id} came back without its payload")
    return point.payload


def qdrant_vector(value, vocabulary: dict[str, int]):
    """A sparse vector (new tokens get the next numbers in ``vocabulary``) or a dense one."""
    if isinstance(value, dict):
        indices = [vocabulary.setdefault(token, len(vocabulary)) for token in value]
        return qe.SparseVector(indices, [float(w) for w in value.values()])
    return [float(v) for v in value]
