"""Endpoint configuration: the packaged endpoints load, and every kind of mistake fails at
start-up with the file, the endpoint and the key named."""

from __future__ import annotations

import textwrap

import pytest

from inference_enrich.inference import (
    EndpointConfigError,
    IncompatibleTaskTypeError,
    UnknownEndpointError,
    load_endpoints,
)
from inference_enrich.inference.endpoint_store import store_path
from inference_enrich.inference.endpoint_files import default_endpoints_path, read_endpoints_file
from inference_enrich.inference.endpoints import Endpoint


def write(tmp_path, body: str):
    path = tmp_path / "endpoints.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_packaged_endpoints_match_the_documented_ones(endpoints):
    elser = endpoints.get("my-elser-model")
    minilm = endpoints.get("my-minilm")
    assert (elser.task_type, elser.service, elser.model_id) == ("sparse_embedding", "transformers", "splade-tiny")
    assert elser.service_settings["max_sequence_length"] == 512
    assert (minilm.task_type, minilm.model_id) == ("text_embedding", "all-minilm-l6-v2")
    assert endpoints.source == f"{store_path()} (not written yet) over the packaged endpoints"
    assert [e.inference_id for e in endpoints] == [e.inference_id for e in read_endpoints_file(default_endpoints_path())]


VALID = """\
endpoints:
  my-elser-model:
    task_type: sparse_embedding
    service: transformers
    service_settings: {model_id: splade-tiny}
    task_settings: {top_k: 10}
"""


@pytest.mark.parametrize(
    "old, new, key, problem",
    [
        ("task_settings: {top_k: 10}", "task_settings: {top_k: 10}\n    colour: red", "colour", "unknown key"),
        ("{top_k: 10}", "{top_k: ten}", "task_settings.top_k", "expected a positive integer"),
        ("{top_k: 10}", "{top_k: true}", "task_settings.top_k", "expected a positive integer"),
        ("{top_k: 10}", "{min_weight: -1}", "task_settings.min_weight", "expected a number >= 0"),
        ("{top_k: 10}", "{pruning: on}", "task_settings.pruning", "unknown key"),
        ("{model_id: splade-tiny}", "{model_id: no-such-model}", "service_settings.model_id", "unknown model 'no-such-model'"),
        ("{model_id: splade-tiny}", "{model_id: splade-tiny, max_sequence_length: 1}", "service_settings.max_sequence_length", "expected an integer >= 2"),
        ("{model_id: splade-tiny}", "{max_sequence_length: 128}", "service_settings.model_id", "required"),
        ("{model_id: splade-tiny}", "{model_id: splade-tiny, modelid: x}", "service_settings.modelid", "unknown key"),
        ("{model_id: splade-tiny}", "{model_id: splade-tiny, quantization: int4}", "service_settings.quantization", "expected 'none'"),
        ("task_type: sparse_embedding", "task_type: completion", "task_type", "unknown task type 'completion'"),
        ("service: transformers", "service: cohere", "service", "unknown service 'cohere'"),
        ("    service: transformers\n", "", "service", "required"),
    ],
)
def test_invalid_endpoint_names_file_endpoint_and_key(tmp_path, old, new, key, problem):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(EndpointConfigError) as error:
        load_endpoints(path)
    message = str(error.value)
    assert message.startswith(f"{path}: endpoint 'my-elser-model': {key}: ")
    assert problem in message


def test_int8_is_refused_for_dense_endpoints(tmp_path):
    body = VALID.replace("sparse_embedding", "text_embedding").replace("task_settings: {top_k: 10}", "")
    path = write(tmp_path, body.replace("{model_id: splade-tiny}", "{model_id: all-minilm-l6-v2, quantization: int8}"))
    with pytest.raises(EndpointConfigError, match="service_settings.quantization: only 'none'"):
        load_endpoints(path)


def test_task_settings_of_another_task_type_are_rejected(tmp_path):
    path = write(tmp_path, VALID.replace("sparse_embedding", "text_embedding"))
    with pytest.raises(EndpointConfigError, match=r"task_settings.top_k: unknown key \(allowed: none"):
        load_endpoints(path)


@pytest.mark.parametrize("body", ["", "endpoints: []", "other: {}", "endpoints: {x: 3}", "endpoints: ["])
def test_malformed_files_fail_with_the_file_named(tmp_path, body):
    path = write(tmp_path, body)
    with pytest.raises(EndpointConfigError, match=str(path)):
        load_endpoints(path)


def test_missing_file(tmp_path):
    with pytest.raises(EndpointConfigError, match="cannot read endpoints file"):
        load_endpoints(tmp_path / "nope.yaml")


def test_local_directory_and_hub_id_are_accepted_model_ids(tmp_path):
    path = write(tmp_path, VALID.replace("splade-tiny", str(tmp_path)))
    assert load_endpoints(path).get("my-elser-model").model_id == str(tmp_path)
    path = write(tmp_path, VALID.replace("splade-tiny", "naver/splade-v3"))
    assert load_endpoints(path).get("my-elser-model").model_id == "naver/splade-v3"


def test_wrong_task_type_is_worded_as_elasticsearch_words_it(endpoints):
    with pytest.raises(IncompatibleTaskTypeError) as error:
        endpoints.get("my-elser-model", "text_embedding")
    assert str(error.value) == (
        "Incompatible task_type, the requested type [text_embedding] "
        "does not match the model type [sparse_embedding]"
    )


def test_unknown_inference_id(endpoints):
    with pytest.raises(UnknownEndpointError, match=r"Inference endpoint not found \[nope\].*my-elser-model"):
        endpoints.get("nope")


def test_every_packaged_endpoint_round_trips_through_its_body(endpoints):
    for endpoint in endpoints:
        body = endpoint.to_body()
        assert set(body) == {"task_type", "service", "service_settings", "task_settings"}
        assert Endpoint.from_body(endpoint.inference_id, body) == endpoint
    assert endpoints.get("my-elser-model").to_body()["service_settings"] == {
        "model_id": "splade-tiny", "max_sequence_length": 512}  # as written, no defaults added


def test_a_body_sent_over_http_is_checked_like_the_file():
    """``PUT _inference/sparse_embedding/my-model`` carries the task type in its path."""
    body = {"service": "transformers", "service_settings": {"model_id": "splade-tiny"},
            "task_settings": {"top_k": 5}}
    endpoint = Endpoint.from_body("my-model", body, task_type="sparse_embedding")
    assert (endpoint.task_type, endpoint.model_id, endpoint.task_settings) == (
        "sparse_embedding", "splade-tiny", {"top_k": 5})
    with pytest.raises(EndpointConfigError) as error:
        Endpoint.from_body("my-model", {**body, "task_settings": {"top_k": 0}}, task_type="sparse_embedding")
    assert str(error.value).startswith("endpoint 'my-model': task_settings.top_k: expected a positive integer")
    with pytest.raises(EndpointConfigError, match="endpoint 'my-model': task_type: required"):
        Endpoint.from_body("my-model", body)
    with pytest.raises(EndpointConfigError, match="task_type: 'text_embedding' in the body differs"):
        Endpoint.from_body("my-model", {**body, "task_type": "text_embedding"}, task_type="sparse_embedding")
