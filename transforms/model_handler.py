"""``EndpointModelHandler``: our endpoints behind Beam's ``RunInference``.

    results = texts | RunInference(EndpointModelHandler("my-elser-model"))
    results, failed = texts | RunInference(EndpointModelHandler("my-elser-model")).with_exception_handling()

Examples are strings; each ``PredictionResult`` holds the text (``example``), the endpoint's
result (``inference``: a ``SparseEmbedding`` or ``TextEmbedding``, or a ``ChunkedEmbedding``
for an endpoint with ``chunking_settings``, each with ``embedding`` and ``is_truncated``) and
the inference id (``model_id``). Wrap it in ``KeyedModelHandler`` to carry ids through.

Inside ``run_inference`` each Beam batch is tokenised together and cut into length-sorted
forward passes by our token budget (the same code as ``Enrich``), so Beam's batch is only
the sorting buffer: by default ``BatchElements`` is asked for fixed batches of
``max_buffered_documents`` elements, as ``Enrich`` buffers per flush.

Failures follow Beam's contract: ``run_inference`` either returns one prediction per example
or raises, and ``with_exception_handling`` then routes the *whole batch* to
``failed_inferences`` as ``(batch, error)``; the error names the text that failed. For one
dead letter per record, use ``Enrich``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from inference_enrich.inference import (
    Endpoint,
    ModelRuntime,
    load_runtime,
    resolve_endpoint,
)
from inference_enrich.inference.api import infer_endpoint_texts
from inference_enrich.inference.runtime import WholeTextRuntime
from inference_enrich.transforms.inference_dofn import BatchingConfig


class EndpointModelHandler(ModelHandler[str, PredictionResult, ModelRuntime | WholeTextRuntime]):
    """A Beam ``ModelHandler`` over one of our inference endpoints.

    endpoint: an inference id in ``endpoints_file`` (the packaged ``configs/endpoints.yaml``
        when None), or an ``Endpoint``.
    batching: forward-pass token budget and size, and the Beam batch size
        (``max_buffered_documents``).
    num_threads: torch threads per worker process (default: torch's choice).
    max_batch_duration_secs: for streaming, how long Beam may hold a partial batch.
    large_model / model_copies: Beam's switches to load the model once per machine and serve
        every worker process from it. Off by default: our models are small (SPLADE-tiny is
        17 MB), so a copy per process is cheaper than sending every batch to another process.
    """

    def __init__(
        self,
        endpoint: str | Endpoint,
        *,
        endpoints_file: str | Path | None = None,
        batching: BatchingConfig = BatchingConfig(),
        num_threads: int | None = None,
        max_batch_duration_secs: int | None = None,
        large_model: bool = False,
        model_copies: int | None = None,
    ) -> None:
        super().__init__(
            min_batch_size=batching.max_buffered_documents,
            max_batch_size=batching.max_buffered_documents,
            max_batch_duration_secs=max_batch_duration_secs,
            large_model=large_model,
            model_copies=model_copies,
        )
        self._endpoint = resolve_endpoint(endpoint, endpoints_file)  # fails at construction
        self._batching = batching
        self._num_threads = num_threads

    def load_model(self) -> ModelRuntime | WholeTextRuntime:
        if self._num_threads:
            import torch

            torch.set_num_threads(self._num_threads)
        return load_runtime(self._endpoint)

    def run_inference(
        self,
        batch: Sequence[str],
        model: ModelRuntime | WholeTextRuntime,
        inference_args: Optional[dict[str, Any]] = None,
    ) -> list[PredictionResult]:
        for position, text in enumerate(batch):
            if not isinstance(text, str):
                raise TypeError(
                    f"EndpointModelHandler takes str examples; element {position} of the batch "
                    f"is {type(text).__name__}: {text!r:.80}"
                )
        results = infer_endpoint_texts(
            self._endpoint, model, batch, self._batching.max_batch_tokens, self._batching.max_batch_size
        )
        inference_id = self._endpoint.inference_id
        return [PredictionResult(text, result, inference_id) for text, result in zip(batch, results, strict=True)]

    def validate_inference_args(self, inference_args: Optional[dict[str, Any]]) -> None:
        if inference_args:
            raise ValueError(
                "EndpointModelHandler takes no inference_args: an endpoint's settings live in "
                "its service_settings and task_settings"
            )

    def __repr__(self) -> str:
        return f"EndpointModelHandler({self._endpoint.inference_id!r})"
