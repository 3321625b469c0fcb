"""``Enrich``: the transform for users' own Beam pipelines.

    enriched, dead_letters = records | Enrich("my-elser-model", text_field="body")

Records are dicts or ``beam.Row``s (or ``Document``s from ``ReadDocuments``, already
validated). Each record is validated with the job's rules (``documents.to_document``: an
object with a non-empty string text field), enriched by the same ``EnrichDocuments`` step the
job runs, and emitted as an ``EnrichedRecord``: the ``EnrichedDocument`` the writers take,
which also reads as a mapping of the input fields plus the output field, ``is_truncated`` and
``id`` (``dict(record)`` for a plain dict). A record that is invalid or that the tokenizer or
the model fails on comes out on ``dead_letter`` instead, as ``{"stage", "error", "record"}``;
every record ends in exactly one of the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import apache_beam as beam
from apache_beam.pvalue import PCollection, TaggedOutput

from inference_enrich.inference import Endpoint, resolve_endpoint
from inference_enrich.transforms.documents import (
    DEAD_LETTER_TAG,
    ENRICHED_FIELDS,
    VALIDATE,
    Document,
    InvalidRecord,
    RecordFields,
    dead_letter,
    enriched_record,
    to_document,
)
from inference_enrich.transforms.inference_dofn import BatchingConfig, EnrichDocuments
from inference_enrich.transforms.metrics import StepMetrics
from inference_enrich.transforms.runner_support import refuse_lossy_runner


class EnrichOutputs(NamedTuple):
    """What ``Enrich`` returns: unpack it, or use the names."""

    enriched: PCollection  # EnrichedRecords: mappings of input fields + output field, is_truncated, id
    dead_letter: PCollection  # dicts: stage, error, record


class ToDocuments(beam.DoFn):
    """Records (dicts, other mappings such as an earlier ``Enrich``'s ``EnrichedRecord``s,
    ``beam.Row``s or ``Document``s) -> ``Document``s; an invalid record becomes a
    ``validate`` dead letter (its record as a dict)."""

    def __init__(self, fields: RecordFields) -> None:
        self._fields = fields
        self._metrics = StepMetrics(["invalid_records"])

    def process(self, record: Any) -> Iterator[Document | TaggedOutput]:
        if isinstance(record, Document):
            yield record
            return
        if hasattr(record, "_asdict"):  # beam.Row, or the NamedTuple a schema'd PCollection holds
            record = record._asdict()
        elif isinstance(record, Mapping) and not isinstance(record, dict):
            record = dict(record)  # so Enrich chains into Enrich, and the dead letter is JSON
        try:
            yield to_document(record, self._fields)
        except InvalidRecord as error:
            self._metrics.inc("invalid_records")
            yield TaggedOutput(DEAD_LETTER_TAG, dead_letter(VALIDATE, str(error), None, record=record))


class Enrich(beam.PTransform):
    """Records -> ``EnrichOutputs(enriched, dead_letter)`` (see the module docstring).

    endpoint: an inference id in ``endpoints_file`` (the packaged
        ``configs/endpoints.yaml`` when None), or an ``Endpoint``.
    text_field / id_field: where the text and the id are (no id: a stable hash of the record).
    output_field: the field that receives the embedding.
    batching: token budget and sizes of forward passes; num_threads: torch threads per worker.
    """

    def __init__(
        self,
        endpoint: str | Endpoint,
        *,
        text_field: str = "text",
        id_field: str = "id",
        output_field: str = "embedding",
        endpoints_file: str | Path | None = None,
        batching: BatchingConfig = BatchingConfig(),
        num_threads: int | None = None,
    ) -> None:
        super().__init__()
        if output_field in (text_field, *ENRICHED_FIELDS):
            raise ValueError(
                f"output_field '{output_field}' must differ from the text field and from "
                + ", ".join(ENRICHED_FIELDS)
            )
        self._endpoint = resolve_endpoint(endpoint, endpoints_file)  # fails at construction
        self._fields = RecordFields(text_field, id_field)
        self._output_field = output_field
        self._batching = batching
        self._num_threads = num_threads

    def expand(self, records) -> EnrichOutputs:
        refuse_lossy_runner(records.pipeline, "Enrich")
        documents = records | "Validate" >> beam.ParDo(ToDocuments(self._fields)).with_outputs(
            DEAD_LETTER_TAG, main="documents"
        )
        inferred = documents.documents | "Infer" >> EnrichDocuments(
            self._endpoint, self._batching, self._num_threads
        )
        enriched = inferred.enriched | "ToRecords" >> beam.Map(enriched_record, self._output_field)
        dead_letters = (
            documents[DEAD_LETTER_TAG],
            inferred[DEAD_LETTER_TAG],
        ) | "DeadLetters" >> beam.Flatten()
        return EnrichOutputs(enriched, dead_letters)
