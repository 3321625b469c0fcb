"""PUT bodies for Elasticsearch's own models map to the packaged equivalents."""

from __future__ import annotations

from inference_enrich.server.model_sources import map_elasticsearch_service


def test_an_elser_body_without_service_settings_maps_to_the_packaged_model():
    # `service: elser` names its model by default; a body without service_settings once
    # failed with AttributeError (None.items()) instead of mapping.
    mapped, note = map_elasticsearch_service({"service": "elser"}, "sparse_embedding")
    assert mapped["service"] == "transformers"
    assert mapped["task_type"] == "sparse_embedding"
    assert mapped["service_settings"]["model_id"] == "splade-tiny"
    assert note is not None and ".elser_model_2" in note
