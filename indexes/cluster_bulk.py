"""Bulk writes to a cluster with one outcome per document, matched by ``_id``.

The clients' ``helpers.streaming_bulk`` chunks and sends the actions and retries the items a
busy cluster answers with a transient status, with exponential backoff (its ``max_retries``,
``initial_backoff``, ``max_backoff``). elasticsearch-py retries every status of
``RETRY_ITEM_STATUS``; opensearch-py retries 429 only, so the items it hands back answered
502-504 are sent again here, the same number of times with the same backoff. The helpers
yield retried items after the others (they pair a resent item with its answer by position,
as the bulk API answers in request order); we pair every answer with its document by the
``_id`` the server names, so an answer for a document not sent, a second answer, or a
document left unanswered raises instead of being counted. An item still answered with a
transient status after the retries raises ``TransientBulkError``, so Beam retries the bundle
or the job fails loudly: a busy cluster never turns documents into dead letters. Any other
item error is the server rejecting that document: its outcome carries the server's error and
it becomes a dead letter."""

from __future__ import annotations

import json
import time
from typing import Any, Generator, Iterable, Iterator

from inference_enrich.indexes.base import BulkOutcome
from inference_enrich.indexes.cluster_client import MAX_RETRIES, ClusterClient

RETRY_ITEM_STATUS = (429, 502, 503, 504)
"""Item statuses of an overloaded or unavailable shard: retried, never a dead letter."""
BULK_CHUNK = 500


class TransientBulkError(RuntimeError):
    """Documents the cluster still answered with a transient status after every retry."""


class ClusterBulk(ClusterClient):
    """``bulk`` for a cluster; subclasses give the client's ``streaming_bulk``."""

    item_retries = MAX_RETRIES
    initial_backoff = 1.0  # seconds; doubled per retry up to max_backoff
    max_backoff = 30.0
    client_retried_item_status: tuple[int, ...] = RETRY_ITEM_STATUS
    """The item statuses the client's ``streaming_bulk`` retries itself; we resend the rest."""

    def streaming_bulk(self, actions: Iterable[dict], retry_on_status: tuple[int, ...],
                       **kwargs: Any) -> Iterator[tuple[bool, dict]]:
        """The client's ``helpers.streaming_bulk``, retrying items answered ``retry_on_status``
        where the client can (see ``client_retried_item_status``)."""
        raise NotImplementedError

    def bulk(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[BulkOutcome]:
        documents = list(documents)
        pending = dict(documents)
        if len(pending) != len(documents):
            raise ValueError("one bulk call takes each document id once (answers are matched by id)")
        for resend in range(self.item_retries + 1):
            transient = yield from self._outcomes(pending)
            if not transient:
                return
            if resend == self.item_retries or any(
                    status in self.client_retried_item_status for status in transient.values()):
                break  # the client has retried these already, or we have as often
            time.sleep(min(self.max_backoff, self.initial_backoff * 2 ** resend))
            pending = {doc_id: pending[doc_id] for doc_id in transient}
        raise TransientBulkError(
            f"{self.engine} still answered {len(transient)} documents with a transient status after "
            f"{self.item_retries} retries (e.g. '{next(iter(transient))}'); retrying the bundle"
        )

    def _outcomes(self, pending: dict[str, dict[str, Any]]) -> Generator[BulkOutcome, None, dict[str, int]]:
        """One ``streaming_bulk`` of ``pending``: an outcome per document written or rejected;
        returns the documents still answered with a transient status (id -> status)."""
        answered: set[str] = set()
        transient: dict[str, int] = {}
        for doc_id, status, error in self._send(pending):
            if doc_id not in pending or doc_id in answered:
                raise RuntimeError(f"{self.engine} answered for document '{doc_id}', which was "
                                   "not in the request or was answered already")
            answered.add(doc_id)
            if status in RETRY_ITEM_STATUS:
                transient[doc_id] = status
            elif error is None:
                yield BulkOutcome(doc_id)
            else:
                yield BulkOutcome(doc_id, f"{self.engine} rejected the document (status {status}): {error}")
        if len(answered) < len(pending):  # never counted as written, nor retried blindly
            missing = next(doc_id for doc_id in pending if doc_id not in answered)
            raise RuntimeError(f"{self.engine} gave no answer for {len(pending) - len(answered)} of "
                               f"{len(pending)} documents (e.g. '{missing}')")
        return transient

    def _send(self, documents: dict[str, dict[str, Any]]) -> Iterator[tuple[str, int, str | None]]:
        """(id, status, error JSON or None) per item answered, as the server names them."""
        actions = (
            {"_op_type": "index", "_index": self._name, "_id": doc_id, "_source": source}
            for doc_id, source in documents.items()
        )
        answers = self.streaming_bulk(
            actions, RETRY_ITEM_STATUS, chunk_size=BULK_CHUNK, max_retries=self.item_retries,
            initial_backoff=self.initial_backoff, max_backoff=self.max_backoff,
            raise_on_error=False, yield_ok=True)
        for ok, item in answers:
            (result,) = item.values()
            if result.get("_id") is None:
                raise RuntimeError(f"{self.engine} answered a bulk item without an _id: {result}")
            error = None if ok else json.dumps(result.get("error"), ensure_ascii=False)
            yield str(result["_id"]), int(result.get("status", 500)), error
