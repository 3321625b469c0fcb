"""Remote endpoints: throughput against requests in flight, until the rate limit binds.

    python bench/bench_remote.py            # ~1-2 minutes; prints a Markdown report

The remote is `enrich serve` (its own process, SPLADE-tiny behind the Elasticsearch route)
behind the tests' fault proxy set to add 50 ms to every request (no faults) and to answer a
request it has seen before from its cache: the texts are sent once through the real server
first (not timed), so in the timed runs a request costs one 50 ms round trip, whatever the
shared machine's load does to the model: what a remote service over a network looks like to
the client. Texts are short (the first 12 words of documents of bench/corpus.py), 4 per
request.

For each rate limit (effectively none: 60,000/min; Elasticsearch's default for OpenAI
embeddings: 3,000/min) and each `max_concurrent_requests` (1, 4, 16), the same texts go
through `RemoteRuntime.infer`, the seam `InferenceDoFn` calls once per buffer of documents;
requests/s are counted at the proxy, as the remote would count them. Then the whole job
(`enrich run` on FnApiRunner, files -> Parquet) at 1 and 16 in flight under the default limit.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO / "tests"))

from corpus import build_corpus  # noqa: E402
from remote_proxy import RemoteFaultProxy  # noqa: E402
from serve_helpers import enrich_server  # noqa: E402

from inference_enrich.inference.endpoints import Endpoint  # noqa: E402
from inference_enrich.inference.remote.runtime import RemoteRuntime  # noqa: E402

LATENCY_S = 0.05
INPUTS_PER_REQUEST = 4
TEXTS = 400  # 100 requests
CONCURRENCY = (1, 4, 16)
RATE_LIMITS = (60000, 3000)


def endpoint(proxy_url: str, concurrency: int, requests_per_minute: int, inference_id: str = "bench") -> Endpoint:
    return Endpoint.from_body(inference_id, {
        "task_type": "sparse_embedding", "service": "elasticsearch_remote",
        "service_settings": {"url": proxy_url, "inference_id": "my-elser-model",
                             "rate_limit": {"requests_per_minute": requests_per_minute},
                             "max_inputs_per_request": INPUTS_PER_REQUEST,
                             "max_concurrent_requests": concurrency}})


def short_texts(count: int) -> list[str]:
    return [" ".join(document["text"].split()[:12]) for document in build_corpus(count)]


def measure_runtime(proxy: RemoteFaultProxy, texts: list[str], concurrency: int, limit: int) -> dict:
    runtime = RemoteRuntime(endpoint(proxy.url, concurrency, limit))
    runtime.probe()  # not timed: connects, and the remote's model is warm
    time.sleep(60 / limit)  # the probe's reservation is spent
    proxy.reset()
    started = time.perf_counter()
    outcome = runtime.infer(texts)
    seconds = time.perf_counter() - started
    assert not any(isinstance(result, Exception) for result in outcome.results)
    span = proxy.arrivals[-1] - proxy.arrivals[0]
    return {"limit": limit, "concurrency": concurrency, "seconds": seconds,
            "docs_per_s": len(texts) / seconds, "requests": len(proxy.arrivals),
            "requests_per_min": (len(proxy.arrivals) - 1) / span * 60,
            "p50_ms": sorted(outcome.stats.latencies_ms)[len(outcome.stats.latencies_ms) // 2]}


def measure_job(proxy: RemoteFaultProxy, work: Path, texts: list[str], concurrency: int, limit: int) -> dict:
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.config import JobConfig
    from inference_enrich.pipelines.enrich import run_job

    import yaml

    inference_id = f"bench-job-{concurrency}"
    body = endpoint(proxy.url, concurrency, limit, inference_id).to_body()
    endpoints = work / f"endpoints-{concurrency}.yaml"
    endpoints.write_text(yaml.safe_dump({"endpoints": {inference_id: body}}))
    source = work / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    proxy.reset()
    started = time.perf_counter()
    summary = run_job(JobConfig(input=[str(source)], output=str(work / f"out-{concurrency}"),
                                endpoints=str(endpoints), inference_id=inference_id),
                      PipelineOptions(["--runner=FnApiRunner"]))
    seconds = time.perf_counter() - started
    assert summary.records_written == len(texts), summary
    span = proxy.arrivals[-1] - proxy.arrivals[0]
    return {"limit": limit, "concurrency": concurrency, "seconds": seconds,
            "docs_per_s": len(texts) / seconds, "requests": len(proxy.arrivals),
            "requests_per_min": (len(proxy.arrivals) - 1) / span * 60}


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    texts = short_texts(TEXTS)
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        with enrich_server(work, "--no-access-log", "--preload") as server, \
                RemoteFaultProxy(server.url, delay_s=LATENCY_S, cache=True) as proxy:
            RemoteRuntime(endpoint(proxy.url, 16, RATE_LIMITS[0])).infer(texts)  # fills the cache
            rows = [measure_runtime(proxy, texts, c, limit) for limit in RATE_LIMITS for c in CONCURRENCY]
            jobs = [measure_job(proxy, work, texts, c, RATE_LIMITS[-1]) for c in (1, 16)]
    print(f"# bench_remote: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(shared with other work: timings are noisy), {LATENCY_S * 1000:.0f} ms added per request, "
          f"{INPUTS_PER_REQUEST} texts per request, {TEXTS} texts\n")
    print("| rate limit /min | in flight | seconds | docs/s | requests | requests/min at the remote | p50 request ms |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['limit']:,} | {row['concurrency']} | {row['seconds']:.2f} | {row['docs_per_s']:,.0f} | "
              f"{row['requests']} | {row['requests_per_min']:,.0f} | {row['p50_ms']} |")
    print("\nWhole job (enrich run on FnApiRunner, start-up included):\n")
    print("| rate limit /min | in flight | seconds | docs/s | requests | requests/min at the remote |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in jobs:
        print(f"| {row['limit']:,} | {row['concurrency']} | {row['seconds']:.2f} | {row['docs_per_s']:,.0f} | "
              f"{row['requests']} | {row['requests_per_min']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
