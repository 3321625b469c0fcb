"""Inference Enrich: Elasticsearch-style inference endpoints for whole corpora and streams.

The public API, for composing our pieces in your own Beam pipeline (README: "Use it in your
own pipeline")::

    from inference_enrich import Enrich, EndpointModelHandler, ReadDocuments, ...

Names are imported on first use, so ``import inference_enrich`` stays cheap (no torch, no
Beam) for the CLI and for tools that only read ``__version__``.

Layers (dependencies point one way):
    pipelines/  runnable jobs and the ``enrich`` CLI
    transforms/ Beam PTransforms and DoFns (read, Enrich/InferenceDoFn, write, dead letters)
    inference/  Beam-free endpoints and model runtimes
    indexes/    Beam-free search-index clients
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # the real types for static tools; at run time ``__getattr__`` imports them
    from inference_enrich.indexes import IndexSettings, IndexSpec
    from inference_enrich.inference.endpoint_store import load_endpoints
    from inference_enrich.inference.endpoints import Endpoint
    from inference_enrich.transforms.dead_letters import WriteDeadLetters
    from inference_enrich.transforms.documents import DEAD_LETTER_TAG, RecordFields
    from inference_enrich.transforms.enrich import Enrich, EnrichOutputs
    from inference_enrich.transforms.inference_dofn import BatchingConfig
    from inference_enrich.transforms.model_handler import EndpointModelHandler
    from inference_enrich.transforms.read_files import ReadDocuments
    from inference_enrich.transforms.write_index import WriteToSearchIndex
    from inference_enrich.transforms.write_parquet import WriteEnrichedParquet

_EXPORTS = {
    # Beam transforms
    "Enrich": "inference_enrich.transforms.enrich",
    "EnrichOutputs": "inference_enrich.transforms.enrich",
    "EndpointModelHandler": "inference_enrich.transforms.model_handler",
    "ReadDocuments": "inference_enrich.transforms.read_files",
    "WriteEnrichedParquet": "inference_enrich.transforms.write_parquet",
    "WriteToSearchIndex": "inference_enrich.transforms.write_index",
    "WriteDeadLetters": "inference_enrich.transforms.dead_letters",
    "BatchingConfig": "inference_enrich.transforms.inference_dofn",
    "RecordFields": "inference_enrich.transforms.documents",
    "DEAD_LETTER_TAG": "inference_enrich.transforms.documents",
    # endpoints and index settings
    "Endpoint": "inference_enrich.inference.endpoints",
    "load_endpoints": "inference_enrich.inference.endpoint_store",
    "IndexSettings": "inference_enrich.indexes",
    "IndexSpec": "inference_enrich.indexes",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inference_enrich' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
