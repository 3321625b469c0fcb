"""``EnrichedRecord``, what ``Enrich`` emits: the ``EnrichedDocument`` the writers take, read as
the enriched record users were promised (the input fields plus the output field,
``is_truncated`` and ``id``, which win over input fields of those names), in the key order
``{**record, output_field: ..., "is_truncated": ..., "id": ...}`` gives."""

from __future__ import annotations

import json
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from inference_enrich.inference.results import ChunkedEmbedding, EmbeddedChunk, SparseEmbedding, TextEmbedding
from inference_enrich.transforms.documents import Document, EnrichedDocument, EnrichedRecord, enriched_record

FIELD_NAMES = st.sampled_from(["id", "text", "is_truncated", "embedding", "tokens", "lang", "year"])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
RESULTS = st.one_of(
    st.builds(SparseEmbedding, st.dictionaries(st.text(min_size=1, max_size=4), st.floats(0.01, 9)), st.booleans()),
    st.builds(TextEmbedding, st.lists(st.floats(-1, 1), max_size=4), st.booleans()),
    st.builds(lambda n, t: ChunkedEmbedding(tuple(EmbeddedChunk(i, i + 1, {"w": 1.0}) for i in range(n)), t),
              st.integers(0, 3), st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(record=st.dictionaries(FIELD_NAMES, VALUES), result=RESULTS, doc_id=st.text(max_size=5),
       output_field=st.sampled_from(["embedding", "tokens"]))
def test_the_record_reads_as_the_dict_it_stands_for(record, result, doc_id, output_field):
    enriched = enriched_record(EnrichedDocument(Document(doc_id, "t", record), result), output_field)
    expected = {**record, output_field: result.embedding, "is_truncated": result.is_truncated, "id": doc_id}
    assert list(dict(enriched).items()) == list(expected.items())  # same keys, values and order
    assert len(enriched) == len(expected) and set(enriched) == set(expected)
    assert enriched == expected and expected == enriched
    assert json.loads(json.dumps(dict(enriched))) == json.loads(json.dumps(expected))
    assert isinstance(enriched, EnrichedDocument) and enriched.result is result
    assert pickle.loads(pickle.dumps(enriched)) == enriched  # how Beam's coders carry it


def test_the_record_is_read_only():
    enriched = EnrichedRecord(Document("a", "t", {"id": "a"}), SparseEmbedding({"w": 1.0}, False))
    try:
        enriched["lang"] = "en"  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("an EnrichedRecord took an item")
    assert "lang" not in enriched and enriched.get("lang") is None
