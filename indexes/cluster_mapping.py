"""Creating a cluster index with our mapping, and checking an existing one against it.

The mapping's ``_meta`` records the text and output fields the index was created with, so
``enrich search`` needs neither flag again. A chunked index maps the output field as
``nested``: one nested document per chunk, with its offsets (stored, not indexed) and its
embedding."""

from __future__ import annotations

from typing import Any

from inference_enrich.indexes.base import (
    CHUNK_EMBEDDING,
    DEFAULT_OUTPUT_FIELD,
    END_OFFSET,
    START_OFFSET,
    IndexSpec,
)
from inference_enrich.indexes.cluster_client import ClusterClient
from inference_enrich.inference.results import SPARSE_EMBEDDING

WRITTEN_WITH = "inference_enrich"
"""Key in the index mapping's ``_meta`` under which the index records the text and output
fields it was created with, so ``enrich search`` needs neither flag again."""


class ClusterMapping(ClusterClient):
    """Index creation and mapping reads; subclasses give the field types."""

    sparse_field_type = ""

    def dense_mapping(self, dims: int) -> tuple[dict, dict]:
        """(field mapping, index settings) for a dense output field."""
        raise NotImplementedError

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


def _described(mapping: dict) -> str:
    """A field mapping's type, naming the chunk embedding's type for a nested field."""
    if mapping.get("type") != "nested":
        return str(mapping.get("type"))
    inner = mapping.get("properties", {}).get(CHUNK_EMBEDDING, {}).get("type")
    return f"nested chunks of {inner}"
