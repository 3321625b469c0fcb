"""Issue #21, item 6: one model per process, however many ``InferenceDoFn`` instances.

Runners make many DoFn instances in one worker process: copies of one transform (a DoFn is
deserialized per bundle processor and per thread), and several transforms on one endpoint.
``Shared`` holds what it built only weakly; the DoFn kept ``holder.runtime`` and let the holder
go, so the next ``Shared.acquire`` of anything else (another stage's shared object) let it be
collected and the next instance loaded a second copy of the model. Real models; the loader is
wrapped only to count its calls."""

from __future__ import annotations

import dataclasses
import gc
import pickle
import uuid

import pytest
from apache_beam.utils import shared

from inference_enrich.inference import load_endpoints
from inference_enrich.transforms import shared_runtimes
from inference_enrich.transforms.inference_dofn import InferenceDoFn


class Built:
    """A weak-referenceable object for another stage's ``Shared``."""


@pytest.fixture
def counted_loads(monkeypatch):
    loads: list[str] = []
    real = shared_runtimes.load_runtime

    def counting(endpoint):
        loads.append(endpoint.inference_id)
        return real(endpoint)

    monkeypatch.setattr(shared_runtimes, "load_runtime", counting)
    return loads


def fresh_endpoint():
    """The packaged sparse endpoint under a new id: no earlier test in this process has it loaded."""
    return dataclasses.replace(load_endpoints().get("my-elser-model"), inference_id=f"count-{uuid.uuid4().hex}")


def test_several_inference_dofn_instances_in_one_process_load_the_model_once(counted_loads):
    endpoint = fresh_endpoint()
    original = InferenceDoFn(endpoint)
    other_transform = InferenceDoFn(endpoint)  # a second Enrich on the same endpoint
    instances = [pickle.loads(pickle.dumps(original)) for _ in range(3)]
    instances += [pickle.loads(pickle.dumps(other_transform)) for _ in range(2)]
    other_stage = shared.Shared()
    kept = []
    for instance in instances:
        instance.setup()
        kept.append(other_stage.acquire(Built))  # another stage's shared object in between
        gc.collect()
    assert counted_loads == [endpoint.inference_id]
    runtimes = {id(instance._runtime) for instance in instances}
    assert len(runtimes) == 1


def test_the_model_is_released_when_no_instance_holds_it(counted_loads):
    """Held for as long as some instance uses it, not forever: a process that finished with
    an endpoint does not keep its model."""
    endpoint = fresh_endpoint()
    first = InferenceDoFn(endpoint)
    first.setup()
    first.teardown()
    del first
    shared.Shared().acquire(Built)  # Beam's keep-alive moves on to another object
    gc.collect()
    second = InferenceDoFn(endpoint)
    second.setup()
    assert len(counted_loads) == 2
