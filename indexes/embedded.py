"""An embedded index in a local directory (qdrant-edge), for users with no search server.

Layout of the directory::

    DIR/shard/            the qdrant-edge shard (exact sparse dot-product search, crash-safe)
    DIR/index.json        what the index was created with (fields, task type, dimensions)
    DIR/vocabulary.json   token -> sparse index; qdrant sparse vectors are keyed by integers

One writer at a time: qdrant-edge locks the shard's write-ahead log, so a second process
opening the same directory fails. The pipeline respects this by sending every document to a
single keyed writer (see ``transforms/write_index.py``), and the writer opens the shard only
for the length of a batch.

Several writers may still take turns (two DoFn instances of one job, a job and a later one),
so nothing read from the directory is kept between calls: each write reloads the vocabulary
while it holds the shard's lock and extends it there, so every token keeps one number.

A chunked index (``IndexSpec.chunked``) stores one point per chunk, carrying the document id
and the chunk's position and offsets; the first chunk's point also carries the document (its
text and passthrough fields), so long texts are stored once (``embedded_points``: documents
as points and back). Rewriting a document replaces
its chunks and removes those it no longer has. qdrant-edge has no grouped search, so a search
takes chunks best first, keeps each document's first (best) one, and asks for more chunks
until it has ``top_k`` documents or the chunks run out: the ranking is exact.

BM25 (``search_text``, and the lexical half of ``search_hybrid``) runs bm25s over the stored
texts (``indexes/lexical.py``), read once per instance and text field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import qdrant_edge as qe

from inference_enrich.indexes.base import BulkOutcome, Hit, IndexSpec, QueryVector, mismatch_error
from inference_enrich.indexes.embedded_points import (
    CHUNK_POSITION_KEY,
    DOC_ID_KEY,
    HIDDEN_KEYS,
    point_id,
    point_payload,
    points_of,
    search_chunks,
)
from inference_enrich.indexes.fusion import RANK_CONSTANT, hybrid_by_fusion
from inference_enrich.indexes.lexical import LexicalIndex
from inference_enrich.inference.results import SPARSE_EMBEDDING


class EmbeddedIndex:
    def __init__(self, path: str) -> None:
        self._path = Path(path).expanduser()
        self._spec_file = self._path / "index.json"
        self._vocab_file = self._path / "vocabulary.json"
        self._spec: IndexSpec | None = None
        self._lexical_indexes: dict[str, LexicalIndex] = {}  # text field -> BM25 (see _lexical)

    def _known_spec(self) -> IndexSpec | None:
        """What the index was created with; read again while unknown (another writer may
        create the index after this instance was made)."""
        if self._spec is None and self._spec_file.is_file():
            self._spec = IndexSpec(**json.loads(self._spec_file.read_text()))
        return self._spec

    def _read_vocabulary(self) -> dict[str, int]:
        """token -> sparse index, as the last writer left it."""
        return json.loads(self._vocab_file.read_text()) if self._vocab_file.is_file() else {}

    def _open(self) -> qe.EdgeShard:
        try:
            return qe.EdgeShard.load(str(self._path / "shard"))
        except Exception as error:
            if "WouldBlock" in str(error):
                raise RuntimeError(
                    f"the embedded index {self._path} is open in another process; it allows "
                    "one writer at a time"
                ) from error
            raise

    def ensure_index(self, spec: IndexSpec) -> None:
        known = self._known_spec()
        if known is not None:
            if known != spec:
                raise ValueError(f"the embedded index {self._path} was created for {known}, not {spec}")
            return
        if spec.task_type == SPARSE_EMBEDDING:
            config = qe.EdgeConfig(sparse_vectors={spec.output_field: qe.EdgeSparseVectorParams()})
        elif spec.dims is not None:
            config = qe.EdgeConfig(vectors={spec.output_field: qe.EdgeVectorParams(size=spec.dims, distance=qe.Distance.Cosine)})
        else:
            raise ValueError(f"a dense index needs the vector size (dims) of {spec.output_field}")
        self._path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(self._path / "shard"), config)
        try:
            if spec.chunked:  # rewrites find a document's chunks, counts its first chunk
                shard.update(qe.UpdateOperation.create_field_index(DOC_ID_KEY, qe.PayloadSchemaType.Keyword))
                shard.update(qe.UpdateOperation.create_field_index(CHUNK_POSITION_KEY, qe.PayloadSchemaType.Integer))
        finally:
            shard.close()
        _write_atomically(self._spec_file, json.dumps(spec.__dict__))
        self._spec = spec

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        spec = self._known_spec()
        if spec is None:
            raise RuntimeError(f"no embedded index at {self._path}: run a job with --sink embedded first")
        self._lexical_indexes.clear()
        shard = self._open()  # holds the directory's lock until closed
        try:
            vocabulary = self._read_vocabulary()  # under the lock: another writer may have grown it
            known = len(vocabulary)
            points, ids, rejected = [], [], []
            for doc_id, source in documents:
                document_points = points_of(spec, doc_id, source, vocabulary)
                if not document_points:
                    rejected.append(BulkOutcome(doc_id, "a chunked document needs at least one chunk"))
                    continue
                points.extend(document_points)
                ids.append(doc_id)
            # The vocabulary is saved before the points it indexes, so a crash never leaves
            # stored vectors with unknown token numbers.
            if len(vocabulary) > known:
                _write_atomically(self._vocab_file, json.dumps(vocabulary, ensure_ascii=False))
            if points:
                shard.update(qe.UpdateOperation.upsert_points(points))
            if spec.chunked and ids:  # chunks a rewritten document no longer has
                shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter(
                    must=[qe.FieldCondition(DOC_ID_KEY, match=qe.MatchAny(ids))],
                    must_not=[qe.HasIdCondition({point.id for point in points})],
                )))
            shard.flush()
        finally:
            shard.close()
        for doc_id in ids:
            yield BulkOutcome(doc_id)
        yield from rejected

    def search(self, query_vector: QueryVector, field: str | None, top_k: int) -> list[Hit]:
        spec = self._searchable_spec(field)
        error = mismatch_error(f"the embedded index {self._path}", spec.task_type, query_vector)
        if error is not None:
            raise error
        if isinstance(query_vector, dict):
            vocabulary = self._read_vocabulary()
            known = [(vocabulary[t], w) for t, w in query_vector.items() if t in vocabulary]
            if not known:
                return []
            vector: Any = qe.SparseVector([i for i, _ in known], [w for _, w in known])
        else:
            if len(query_vector) != spec.dims:
                raise ValueError(f"the embedded index {self._path} holds {spec.dims}-dimensional vectors; "
                                 f"the query's has {len(query_vector)}: search it with the endpoint it was "
                                 "written with")
            vector = [float(v) for v in query_vector]
        query = qe.Query.Nearest(vector, using=spec.output_field)
        shard = self._open()
        try:
            if spec.chunked:
                return search_chunks(shard, query, top_k)
            points = shard.query(qe.QueryRequest(limit=top_k, query=query, with_payload=True))
        finally:
            shard.close()
        hits = []
        for point in points:
            payload = dict(point.payload or {})
            hits.append(Hit(str(payload.pop(DOC_ID_KEY, point.id)), float(point.score), payload))
        return hits

    def text_field(self) -> str | None:
        spec = self._known_spec()
        return spec.text_field if spec is not None else None

    def search_text(self, text: str, text_field: str, field: str | None, top_k: int) -> list[Hit]:
        spec = self._searchable_spec(field)
        found = self._lexical(spec, text_field).search(text, top_k)
        if not found:
            return []
        shard = self._open()
        try:
            records = shard.retrieve([point_id(doc_id, 0 if spec.chunked else None) for doc_id, _ in found],
                                     with_payload=True, with_vector=False)
        finally:
            shard.close()
        payloads = {payload[DOC_ID_KEY]: payload for payload in map(point_payload, records)}
        return [Hit(doc_id, score, {k: v for k, v in payloads[doc_id].items() if k not in HIDDEN_KEYS})
                for doc_id, score in found]

    def search_hybrid(self, text: str, query_vector: QueryVector, text_field: str, field: str | None,
                      top_k: int, rank_window_size: int, rank_constant: int = RANK_CONSTANT) -> list[Hit]:
        return hybrid_by_fusion(self, text, query_vector, text_field, field, top_k, rank_window_size,
                                rank_constant)

    def _lexical(self, spec: IndexSpec, text_field: str) -> LexicalIndex:
        """BM25 over every document's ``text_field``, read from the shard at this instance's
        first text search on that field and kept for its later ones (a write through this
        instance drops it; another process's later writes are seen by a new instance)."""
        if text_field not in self._lexical_indexes:
            first_chunks = qe.Filter(must=[qe.FieldCondition(CHUNK_POSITION_KEY, match=qe.MatchValue(0))])
            ids, texts = [], []
            shard = self._open()
            try:
                offset = None
                while True:
                    records, offset = shard.scroll(qe.ScrollRequest(
                        offset=offset, limit=1000, filter=first_chunks if spec.chunked else None,
                        with_payload=True, with_vector=False))
                    for payload in map(point_payload, records):
                        ids.append(str(payload[DOC_ID_KEY]))
                        value = payload.get(text_field)
                        texts.append(value if isinstance(value, str) else "")
                    if offset is None:
                        break
            finally:
                shard.close()
            self._lexical_indexes[text_field] = LexicalIndex(ids, texts)
        return self._lexical_indexes[text_field]

    def _searchable_spec(self, field: str | None) -> IndexSpec:
        """The index's spec, after checking there is an index and ``field`` is its field."""
        spec = self._known_spec()
        if spec is None:
            raise ValueError(f"no embedded index at {self._path}: run a job with --sink embedded first")
        if field is not None and field != spec.output_field:
            raise ValueError(f"the embedded index {self._path} holds its embeddings in "
                             f"'{spec.output_field}', not '{field}'")
        return spec

    def count(self) -> int:
        spec = self._known_spec()
        if spec is None:
            return 0
        first_chunks = qe.Filter(must=[qe.FieldCondition(CHUNK_POSITION_KEY, match=qe.MatchValue(0))])
        shard = self._open()
        try:
            return shard.count(qe.CountRequest(filter=first_chunks if spec.chunked else None))
        finally:
            shard.close()

    def close(self) -> None:
        """Nothing stays open between calls."""


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
