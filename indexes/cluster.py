"""What Elasticsearch and OpenSearch clusters share: index creation, bulk writes, searches.

Bulk writes use the clients' ``helpers.streaming_bulk`` to chunk and send actions, and pair
every answer with its document by the ``_id`` the server names, never by position (the
helpers yield retried items after the others). Items answered 429 or 502-504 (an overloaded
or unavailable shard) are sent again, by id, with exponential backoff; if they still fail,
``TransientBulkError`` is raised so Beam retries the bundle or the job fails loudly: a busy
cluster never turns documents into dead letters. Any other item error is the server
rejecting that document: its outcome carries the server's error and it becomes a dead
letter. Whole-request failures (connection errors, 429, 5xx) are retried by the client's
transport; if they persist the exception propagates and Beam retries the bundle. A cluster
that cannot be reached at all when the index is created, counted or searched (what
``enrich run`` does at launch and ``enrich search`` does) raises ``IndexUnreachable``: one line
naming the cluster and the cause, instead of the client's nested tracebacks.

A chunked index maps the output field as ``nested``: one nested document per chunk, with its
offsets (stored, not indexed) and its embedding. A search wraps the vector query (sparse, or kNN) in a
``nested`` query with ``score_mode: max``, so a document scores its best chunk and comes back
once, and asks for that chunk with ``inner_hits`` (size 1). The chunk is read by its position
(``_nested.offset``) from the document's own ``_source``, which carries every chunk's offsets
but no embeddings: servers disagree on how source filtering inside ``inner_hits`` names
nested paths (noida-db relative to the nested object, osmem-server from the root), while
``_nested.offset`` means the same everywhere.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from inference_enrich.indexes.base import (
    CHUNK_EMBEDDING,
    DEFAULT_OUTPUT_FIELD,
    END_OFFSET,
    START_OFFSET,
    BestChunk,
    BulkOutcome,
    Hit,
    IndexRefused,
    IndexSpec,
    IndexUnreachable,
    QueryVector,
    mismatch_error,
)
from inference_enrich.indexes.fusion import RANK_CONSTANT, hybrid_by_fusion
from inference_enrich.indexes.settings import DEFAULT_URLS, IndexSettings
from inference_enrich.inference.results import SPARSE_EMBEDDING, TEXT_EMBEDDING
from inference_enrich.inference.secrets import reveal

RETRY_ON_STATUS = (429, 500, 502, 503, 504)
RETRY_ITEM_STATUS = (429, 502, 503, 504)
MAX_RETRIES = 5
BULK_CHUNK = 500
WRITTEN_WITH = "inference_enrich"
"""Key in the index mapping's ``_meta`` under which the index records the text and output
fields it was created with, so ``enrich search`` needs neither flag again."""


class TransientBulkError(RuntimeError):
    """Documents the cluster still answered with a transient status after every retry."""


def connection_problem(error: Exception) -> str:
    """The root cause of a client's connection error in a few words (``Connection refused``,
    ``Name or service not known``): the clients nest it several wrappers deep."""
    text = str(error)
    errno = re.findall(r"\[Errno -?\d+\] ([^)\]'\"]+)", text)
    if errno:
        return errno[-1].strip()
    innermost = re.split(r"caused by: ", text)[-1].strip()
    return innermost or type(error).__name__


class ClusterIndex:
    """Base class: subclasses give the client, the field types and the query shape."""

    sparse_field_type = ""
    engine = ""
    connection_errors: tuple[type[Exception], ...] = ()  # the client's "could not connect"
    answer_errors: tuple[type[Exception], ...] = ()  # the client's "the server answered an error"
    not_found_errors: tuple[type[Exception], ...] = ()  # the client's 404
    bad_request_errors: tuple[type[Exception], ...] = ()  # the client's 400
    item_retries = MAX_RETRIES
    initial_backoff = 1.0  # seconds; doubled per retry up to max_backoff
    max_backoff = 30.0

    def __init__(self, settings: IndexSettings) -> None:
        self._settings = settings
        self._name = settings.index
        self._url = settings.url or DEFAULT_URLS[settings.kind]
        self._client = self.connect(settings, self._url)

    # -- subclass hooks ------------------------------------------------------------------
    def new_client(self, url: str, **options: Any) -> Any:
        """The engine's client for ``url`` with ``options`` in its own spelling."""
        raise NotImplementedError

    def timeout_option(self, seconds: float) -> dict:
        raise NotImplementedError

    def api_key_option(self, api_key: str) -> dict:
        raise NotImplementedError

    def basic_auth_option(self, username: str, password: str) -> dict:
        raise NotImplementedError

    def tls_options(self, settings: IndexSettings) -> dict:
        raise NotImplementedError

    def streaming_bulk(self, actions: Iterable[dict], **kwargs) -> Iterator[tuple[bool, dict]]:
        raise NotImplementedError

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        """(field mapping, index settings) for a dense output field."""
        raise NotImplementedError

    def sparse_query(self, query_vector: dict[str, float], field: str) -> dict:
        raise NotImplementedError

    def knn_query(self, query_vector: list[float], field: str, top_k: int) -> dict:
        """The engine's kNN query for the ``top_k`` nearest dense vectors in ``field``."""
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------------------
    def connect(self, settings: IndexSettings, url: str) -> Any:
        """One policy for both engines (retries, timeout, credentials, TLS); the subclasses
        only spell the options their client takes, so a setting cannot reach one engine
        and be dropped by the other. An API key wins over a username."""
        options: dict[str, Any] = {"retry_on_status": RETRY_ON_STATUS, "max_retries": MAX_RETRIES,
                                   "retry_on_timeout": True, **self.timeout_option(60)}
        api_key = reveal(settings.api_key)
        if api_key:
            options.update(self.api_key_option(api_key))
        elif settings.username:
            options.update(self.basic_auth_option(settings.username, reveal(settings.password) or ""))
        if url.startswith("https"):
            options.update(self.tls_options(settings))
        return self.new_client(url, **options)

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turns the client's connection errors (after its own retries) into
        ``IndexUnreachable``, which names the cluster and the cause in one line."""
        try:
            yield
        except self.connection_errors as error:
            raise IndexUnreachable(
                f"cannot connect to {self._settings.describe()}: {connection_problem(error)}"
            ) from error
        except self.answer_errors as error:
            raise IndexRefused(f"{self._settings.describe()} {self.refusal(error)}") from error

    def refusal(self, error: Exception) -> str:
        """What the server answered, in one line: its own error when it is an
        Elasticsearch-style error body, else that it is not the engine at all."""
        status = getattr(getattr(error, "meta", None), "status", None) or getattr(error, "status_code", None)
        body = getattr(error, "body", None) if hasattr(error, "meta") else getattr(error, "info", None)
        cause = body.get("error") if isinstance(body, dict) else None
        if isinstance(cause, dict) and cause.get("type") and self.is_engine_answer(error):
            return (f"refused the request (HTTP {status}): {cause['type']}: "
                    f"{' '.join(str(cause.get('reason', '')).split())[:300]}")
        return (f"did not answer as {self.engine} does (HTTP {status}"
                f"{', no error body' if body in (None, '', 'None') else ''}): "
                f"is --es-url the address of an {self.engine} cluster?")

    def is_engine_answer(self, error: Exception) -> bool:
        """Whether ``error`` came from a server that passed the client's product check."""
        return True

    def output_mapping(self, spec: IndexSpec) -> tuple[dict, dict]:
        """(output field mapping, index settings) for ``spec``."""
        index_settings: dict[str, Any]
        if spec.task_type == SPARSE_EMBEDDING:
            embedding_mapping, index_settings = {"type": self.sparse_field_type}, {}
        else:
            embedding_mapping, index_settings = self.dense_mapping(spec.dims or 0)
        if not spec.chunked:
            return embedding_mapping, index_settings
        offset = {"type": "integer", "index": False}
        nested = {"type": "nested", "properties": {
            START_OFFSET: offset, END_OFFSET: offset, CHUNK_EMBEDDING: embedding_mapping}}
        return nested, index_settings

    def ensure_index(self, spec: IndexSpec) -> None:
        with self._reaching():
            self._ensure_index(spec)

    def _ensure_index(self, spec: IndexSpec) -> None:
        output_mapping, index_settings = self.output_mapping(spec)
        if self._client.indices.exists(index=self._name):
            self._check_mapping(spec.output_field, output_mapping)
            return
        body: dict[str, Any] = {
            "mappings": {
                "_meta": {WRITTEN_WITH: {"text_field": spec.text_field, "output_field": spec.output_field}},
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

    def _mappings(self) -> dict:
        mapping = self._client.indices.get_mapping(index=self._name)
        return next(iter(dict(mapping).values()))["mappings"]

    def _field_mapping(self, field: str) -> dict:
        """How the index maps ``field`` ({} while unmapped)."""
        return self._mappings().get("properties", {}).get(field, {})

    def _written_with(self) -> dict:
        """The fields the index was created with, from its mapping's ``_meta`` ({} for an
        index created by others, or by a version that did not record them)."""
        return self._mappings().get("_meta", {}).get(WRITTEN_WITH, {})

    def text_field(self) -> str | None:
        with self._reaching():
            return self._written_with().get("text_field")

    def _output_field(self, field: str | None) -> str:
        """``field``, else the one the index was written with, else the default."""
        return field or self._written_with().get("output_field") or DEFAULT_OUTPUT_FIELD

    def _check_mapping(self, field: str, expected: dict) -> None:
        """An existing index must map ``field`` as ``expected`` would (or not yet at all):
        the same type and, for a nested (chunked) field, the same chunk embedding type."""
        actual = self._field_mapping(field)
        if not actual:
            return
        if _described(actual) != _described(expected):
            raise ValueError(
                f"{self.engine} index '{self._name}' maps '{field}' as {_described(actual)}, "
                f"not {_described(expected)}: choose another --index or output field"
            )

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        documents = list(documents)
        pending = dict(documents)
        if len(pending) != len(documents):
            raise ValueError("one bulk call takes each document id once (answers are matched by id)")
        for attempt in range(self.item_retries + 1):
            if attempt:
                time.sleep(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))
            retry: dict[str, dict[str, Any]] = {}
            answered: set[str] = set()
            for doc_id, status, error in self._send(pending):
                if doc_id not in pending or doc_id in answered:
                    raise RuntimeError(f"{self.engine} answered for document '{doc_id}', which was "
                                       "not in the request or was answered already")
                answered.add(doc_id)
                if status in RETRY_ITEM_STATUS:
                    retry[doc_id] = pending[doc_id]
                elif error is None:
                    yield BulkOutcome(doc_id)
                else:
                    yield BulkOutcome(doc_id, f"{self.engine} rejected the document (status {status}): {error}")
            if len(answered) < len(pending):  # never counted as written, nor retried blindly
                missing = next(doc_id for doc_id in pending if doc_id not in answered)
                raise RuntimeError(f"{self.engine} gave no answer for {len(pending) - len(answered)} of "
                                   f"{len(pending)} documents (e.g. '{missing}')")
            if not retry:
                return
            pending = retry
        raise TransientBulkError(
            f"{self.engine} still answered {len(pending)} documents with a transient status after "
            f"{self.item_retries} retries (e.g. '{next(iter(pending))}'); retrying the bundle"
        )

    def _send(self, documents: dict[str, dict[str, Any]]) -> Iterator[tuple[str, int, str | None]]:
        """(id, status, error JSON or None) per item answered, as the server names them."""
        actions = (
            {"_op_type": "index", "_index": self._name, "_id": doc_id, "_source": source}
            for doc_id, source in documents.items()
        )
        for ok, item in self.streaming_bulk(actions, chunk_size=BULK_CHUNK, max_retries=0,
                                            raise_on_error=False, yield_ok=True):
            (result,) = item.values()
            if result.get("_id") is None:
                raise RuntimeError(f"{self.engine} answered a bulk item without an _id: {result}")
            error = None if ok else json.dumps(result.get("error"), ensure_ascii=False)
            yield str(result["_id"]), int(result.get("status", 500)), error

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

    def search_hybrid(self, text: str, query_vector: QueryVector, text_field: str, field: str | None,
                      top_k: int, rank_window_size: int, rank_constant: int = RANK_CONSTANT) -> list[Hit]:
        """Our fusion of a ``match`` and a vector search (OpenSearch's own hybrid query needs a
        search pipeline made beforehand; osmem-server has neither)."""
        return hybrid_by_fusion(self, text, query_vector, text_field, field, top_k, rank_window_size,
                                rank_constant)

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

    def close(self) -> None:
        self._client.close()


def _reason(error: Exception) -> str:
    """The server's reason for an error answer, else the client's message."""
    body = getattr(error, "body", None) or getattr(error, "info", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or body["error"].get("type"))
    return str(error)


def _described(mapping: dict) -> str:
    """A field mapping's type, naming the chunk embedding's type for a nested field."""
    if mapping.get("type") != "nested":
        return str(mapping.get("type"))
    inner = mapping.get("properties", {}).get(CHUNK_EMBEDDING, {}).get("type")
    return f"nested chunks of {inner}"
