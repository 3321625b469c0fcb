"""The runtime seam: the core of ``inference`` knows runtimes only through the protocol in
``inference/runtime.py``; the remote plugin (``inference/remote``'s runtime and HTTP client)
is imported by the runtime factory when a remote endpoint is used, never by the core."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inference_enrich.inference.services import SERVICES

PLUGIN = ("inference_enrich.inference.remote.runtime", "inference_enrich.inference.remote.http")


@pytest.mark.parametrize("module", ["inference_enrich.inference", "inference_enrich.inference.batching",
                                    "inference_enrich.inference.api"])
def test_the_core_does_not_import_the_remote_plugin(module):
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not set(PLUGIN) & set(done.stdout.split()), sorted(set(PLUGIN) & set(done.stdout.split()))


def test_a_service_that_takes_whole_texts_is_one_whose_requests_carry_its_task_settings():
    """The server pools an endpoint by ``task_settings_in_requests`` and picks its worker by
    ``tokenizes_locally`` (``server/model_pool.py``): a model thread shared by endpoints of
    different task settings must be one that applies them to results."""
    assert {name for name, info in SERVICES.items() if info.tokenizes_locally} == {"transformers"}
    for info in SERVICES.values():
        assert info.task_settings_in_requests is not info.tokenizes_locally
