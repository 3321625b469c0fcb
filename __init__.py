"""Inference Enrich: Elasticsearch-style inference endpoints for whole corpora and streams.

Layers (dependencies point one way):
    pipelines/  runnable jobs and the ``enrich`` CLI
    transforms/ Beam PTransforms and DoFns (read, InferenceDoFn, write, dead letters)
    inference/  Beam-free endpoints and model runtimes
"""

__version__ = "0.1.0"
