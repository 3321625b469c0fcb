"""Prometheus metrics for ``GET /metrics``: requests, latency, batches, tokens and 429s.

Each app has its own registry (no process-global state, so tests can build several apps).
Request labels use the route template (``/_inference/{task_type}/{inference_id}``), never the
raw path, so a scan of made-up URLs cannot blow up the number of series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


class ServerMetrics:
    """The counters and histograms one server exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "enrich_http_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=self.registry)
        self.latency = Histogram(
            "enrich_http_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_progress = Gauge(
            "enrich_http_requests_in_progress", "HTTP requests being answered",
            registry=self.registry)
        self.inputs = Counter(
            "enrich_inference_inputs", "Texts embedded", ["inference_id", "task_type"],
            registry=self.registry)
        self.tokens = Counter(
            "enrich_inference_tokens", "Tokens embedded (special tokens included)",
            ["inference_id", "task_type"], registry=self.registry)
        self.batch_documents = Histogram(
            "enrich_batch_documents", "Texts per forward pass (dynamic batching)", ["model_id"],
            buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.batch_tokens = Histogram(
            "enrich_batch_padded_tokens", "Padded tokens per forward pass", ["model_id"],
            buckets=BATCH_TOKEN_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram(
            "enrich_batch_duration_seconds", "Time of one forward pass", ["model_id"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rejected = self._count_per_endpoint(
            "enrich_rejected_requests", "Requests refused with 429: the model held --max-queued-texts")
        self.remote_requests = self._count_per_endpoint(
            "enrich_remote_requests", "Requests sent to remote inference services")
        self.remote_retries = self._count_per_endpoint(
            "enrich_remote_retries", "Retried requests to remote services (429, 5xx, timeouts)")
        self.remote_throttled = self._count_per_endpoint(
            "enrich_remote_throttled_waits", "Requests that waited for the rate limit")
        self.remote_seconds = Histogram(
            "enrich_remote_request_duration_seconds", "Time of one request to a remote service",
            ["inference_id"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def _count_per_endpoint(self, name: str, documentation: str) -> Counter:
        """A counter in this server's registry, one series per inference endpoint."""
        return Counter(name, documentation, ["inference_id"], registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_batch(self, model_id: str, documents: int, padded_tokens: int, seconds: float) -> None:
        """A ``BatchObserver``: called from the model threads (prometheus_client is thread-safe)."""
        self.batch_documents.labels(model_id).observe(documents)
        self.batch_tokens.labels(model_id).observe(padded_tokens)
        self.batch_seconds.labels(model_id).observe(seconds)

    def observe_remote(self, inference_id: str, stats) -> None:
        """What one request's calls to a remote service did (a ``CallStats``)."""
        self.remote_requests.labels(inference_id).inc(stats.requests)
        self.remote_retries.labels(inference_id).inc(stats.retries)
        self.remote_throttled.labels(inference_id).inc(stats.throttled_waits)
        for latency_ms in stats.latencies_ms:
            self.remote_seconds.labels(inference_id).observe(latency_ms / 1000)

    def observe_rejection(self, inference_id: str) -> None:
        self.rejected.labels(inference_id).inc()

    def observe_inference(self, inference_id: str, task_type: str, inputs: int, tokens: int) -> None:
        self.inputs.labels(inference_id, task_type).inc(inputs)
        self.tokens.labels(inference_id, task_type).inc(tokens)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
