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
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

import qdrant_edge as qe

from inference_enrich.indexes.base import BulkOutcome, Hit, IndexSpec
from inference_enrich.inference.results import SPARSE_EMBEDDING

DOC_ID_KEY = "_doc_id"
_ID_NAMESPACE = uuid.UUID("5b0e4a52-3f0c-4c4e-9d59-3a8f1b0c2f11")


def point_id(doc_id: str) -> str:
    """qdrant wants integer or UUID ids; a name-based UUID keeps re-runs idempotent."""
    return str(uuid.uuid5(_ID_NAMESPACE, doc_id))


class EmbeddedIndex:
    def __init__(self, path: str) -> None:
        self._path = Path(path).expanduser()
        self._spec_file = self._path / "index.json"
        self._vocab_file = self._path / "vocabulary.json"
        self._spec: IndexSpec | None = None

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
        else:
            config = qe.EdgeConfig(vectors={spec.output_field: qe.EdgeVectorParams(size=spec.dims, distance=qe.Distance.Cosine)})
        self._path.mkdir(parents=True, exist_ok=True)
        qe.EdgeShard.create(str(self._path / "shard"), config).close()
        _write_atomically(self._spec_file, json.dumps(spec.__dict__))
        self._spec = spec

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        spec = self._known_spec()
        if spec is None:
            raise RuntimeError(f"no embedded index at {self._path}: run a job with --sink embedded first")
        field = spec.output_field
        shard = self._open()  # holds the directory's lock until closed
        try:
            vocabulary = self._read_vocabulary()  # under the lock: another writer may have grown it
            known = len(vocabulary)
            points, ids = [], []
            for doc_id, source in documents:
                payload = {k: v for k, v in source.items() if k != field}
                payload[DOC_ID_KEY] = doc_id
                points.append(qe.Point(point_id(doc_id), {field: _vector(source[field], vocabulary)}, payload))
                ids.append(doc_id)
            # The vocabulary is saved before the points it indexes, so a crash never leaves
            # stored vectors with unknown token numbers.
            if len(vocabulary) > known:
                _write_atomically(self._vocab_file, json.dumps(vocabulary, ensure_ascii=False))
            shard.update(qe.UpdateOperation.upsert_points(points))
            shard.flush()
        finally:
            shard.close()
        for doc_id in ids:
            yield BulkOutcome(doc_id)

    def search(self, query_vector: dict[str, float], field: str | None, top_k: int) -> list[Hit]:
        spec = self._known_spec()
        if spec is None:
            raise ValueError(f"no embedded index at {self._path}: run a job with --sink embedded first")
        if field is not None and field != spec.output_field:
            raise ValueError(f"the embedded index {self._path} holds its embeddings in "
                             f"'{spec.output_field}', not '{field}'")
        field = spec.output_field
        vocabulary = self._read_vocabulary()
        known = [(vocabulary[t], w) for t, w in query_vector.items() if t in vocabulary]
        if not known:
            return []
        shard = self._open()
        try:
            points = shard.query(
                qe.QueryRequest(
                    limit=top_k,
                    query=qe.Query.Nearest(qe.SparseVector([i for i, _ in known], [w for _, w in known]), using=field),
                    with_payload=True,
                )
            )
        finally:
            shard.close()
        hits = []
        for point in points:
            payload = dict(point.payload or {})
            hits.append(Hit(str(payload.pop(DOC_ID_KEY, point.id)), float(point.score), payload))
        return hits

    def count(self) -> int:
        if self._known_spec() is None:
            return 0
        shard = self._open()
        try:
            return shard.count(qe.CountRequest())
        finally:
            shard.close()

    def close(self) -> None:
        """Nothing stays open between calls."""


def _vector(value, vocabulary: dict[str, int]):
    """A sparse vector (new tokens get the next numbers in ``vocabulary``) or a dense one."""
    if isinstance(value, dict):
        indices = [vocabulary.setdefault(token, len(vocabulary)) for token in value]
        return qe.SparseVector(indices, [float(w) for w in value.values()])
    return [float(v) for v in value]


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
