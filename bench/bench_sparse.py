"""Sparse-embedding throughput: our pipeline against the alternatives, in one run.

    python bench/bench_sparse.py                 # 5,000 documents, prints a Markdown report
    python bench/bench_sparse.py --scaling       # also 10,000 vs 100,000 documents for (a)

Variants (each in its own process, so peak RSS is its own):
  (a)  ours: JSONL -> ReadDocuments -> InferenceDoFn -> Parquet, Beam FnApiRunner
  (a8) ours, fast mode: the same with the int8 endpoint (``my-elser-model-int8``)
  (b)  Beam today: SortAndBatchElements + RunInference(PytorchModelHandlerTensor, keyed, no
       batching) with an inference_fn that pads per batch and applies SPLADE pooling -> Parquet
  (c)  plain transformers, one document at a time (the textbook computation)
  (d)  sentence-transformers SparseEncoder (MLM transformer + SpladePooling max), model only
  (e)  the physical limit: the best fp32 matmul FLOP/s (MKL or oneDNN) / the model's FLOPs per token
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from corpus import build_corpus  # noqa: E402

CHECK_DOCS = 300  # documents (c) computes; (a), (b) and (a8) are compared with it on these


def peak_rss_mb() -> float:
    """This process's high-water mark so far: take it as soon as the job ends, before the
    checks below read anything back, or they would count as the job's memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_texts(corpus: Path, limit: int | None = None) -> list[dict]:
    with corpus.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in itertools.islice(lines, limit)]


def checked_weights(corpus: Path, output: Path) -> dict[str, dict[str, float]]:
    """Weights of the first ``CHECK_DOCS`` documents, read from the job's Parquet output."""
    import pyarrow.dataset as ds

    wanted = [d["id"] for d in load_texts(corpus, CHECK_DOCS)]
    table = ds.dataset(output).to_table(columns=["id", "embedding"], filter=ds.field("id").isin(wanted))
    return {r["id"]: dict(r["embedding"]) for r in table.to_pylist()}


# ---------------------------------------------------------------------------- variants


def variant_ours(corpus: Path, work: Path, inference_id: str = "my-elser-model") -> dict:
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.config import JobConfig
    from inference_enrich.pipelines.enrich import run_job

    started = time.perf_counter()
    summary = run_job(
        JobConfig(input=[str(corpus)], output=str(work / "out"), inference_id=inference_id),
        PipelineOptions(["--runner=FnApiRunner"]),
    )
    seconds, peak = time.perf_counter() - started, peak_rss_mb()
    return {"docs": summary.records_written, "seconds": seconds, "peak_rss_mb": peak,
            "weights": checked_weights(corpus, work / "out")}


def variant_beam_runinference(corpus: Path, work: Path, budget: int) -> dict:
    import apache_beam as beam
    import pyarrow as pa
    import torch
    from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
    from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerTensor
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from inference_enrich.inference.models import resolve_model_path

    path = resolve_model_path("splade-tiny")
    state_dict = work / "splade.pt"
    torch.save(AutoModelForMaskedLM.from_pretrained(path).state_dict(), state_dict)
    config = AutoConfig.from_pretrained(path)

    class Tokenize(beam.DoFn):
        def setup(self):
            self.tokenizer = AutoTokenizer.from_pretrained(path)

        def process(self, record):
            ids = self.tokenizer(record["text"], truncation=True, max_length=512)["input_ids"]
            yield record["id"], torch.tensor(ids, dtype=torch.long)

    def splade_inference_fn(batch, model, device, inference_args=None, model_id=None):
        with torch.no_grad():
            input_ids = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)
            mask = (input_ids != 0).long()
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            pooled = torch.max(torch.log1p(torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
            pooled[:, SPECIAL_IDS] = 0
            results = []
            for example, row in zip(batch, pooled):
                ids = torch.nonzero(row).squeeze(1)
                values = row[ids]
                order = torch.argsort(values, descending=True)
                tokens = VOCAB_LOOKUP.convert_ids_to_tokens(ids[order].tolist())
                results.append(PredictionResult(example, dict(zip(tokens, values[order].tolist()))))
            return results

    tokenizer = AutoTokenizer.from_pretrained(path)
    global VOCAB_LOOKUP, SPECIAL_IDS
    VOCAB_LOOKUP, SPECIAL_IDS = tokenizer, sorted(set(tokenizer.all_special_ids))
    handler = KeyedModelHandler(
        PytorchModelHandlerTensor(
            state_dict_path=str(state_dict),
            model_class=AutoModelForMaskedLM.from_config,
            model_params={"config": config},
            inference_fn=splade_inference_fn,
        )
    ).with_no_batching()
    schema = pa.schema([("id", pa.string()), ("embedding", pa.map_(pa.string(), pa.float32()))])
    started = time.perf_counter()
    with beam.Pipeline(argv=["--runner=FnApiRunner"]) as pipeline:
        _ = (
            pipeline
            | beam.io.ReadFromText(str(corpus))
            | beam.Map(json.loads)
            | beam.ParDo(Tokenize())
            | beam.transforms.util.SortAndBatchElements(
                min_batch_size=1, max_batch_size=64, max_batch_weight=budget,
                element_size_fn=lambda pair: len(pair[1]))
            | RunInference(handler)
            | beam.Map(lambda kv: {"id": kv[0], "embedding": list(kv[1].inference.items())})
            | beam.io.WriteToParquet(str(work / "out" / "part"), schema, file_name_suffix=".parquet")
        )
    seconds, peak = time.perf_counter() - started, peak_rss_mb()
    import pyarrow.dataset as ds

    return {"docs": ds.dataset(work / "out").count_rows(), "seconds": seconds, "peak_rss_mb": peak,
            "weights": checked_weights(corpus, work / "out")}


def variant_plain_transformers(corpus: Path, work: Path) -> dict:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from inference_enrich.inference.models import resolve_model_path

    path = resolve_model_path("splade-tiny")
    records = load_texts(corpus, CHECK_DOCS)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    special = sorted(set(tokenizer.all_special_ids))
    weights, tokens = {}, 0
    for record in records:
        encoded = tokenizer(record["text"], truncation=True, max_length=512, return_tensors="pt")
        tokens += encoded["input_ids"].shape[1]
        with torch.no_grad():
            row = torch.log1p(torch.relu(model(**encoded).logits[0])).amax(dim=0)
        row[special] = 0
        ids = torch.nonzero(row).squeeze(1).tolist()
        weights[record["id"]] = dict(zip(tokenizer.convert_ids_to_tokens(ids), row[ids].tolist()))
    return {"docs": len(records), "tokens": tokens, "seconds": time.perf_counter() - started,
            "weights": weights}


def variant_sentence_transformers(corpus: Path, work: Path) -> dict:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    from inference_enrich.inference.models import resolve_model_path

    texts = [r["text"] for r in load_texts(corpus)]
    started = time.perf_counter()
    model = SparseEncoder(
        modules=[MLMTransformer.load(resolve_model_path("splade-tiny"), max_seq_length=512),
                 SpladePooling("max")],
        device="cpu",
    )
    model.encode(texts, batch_size=32, convert_to_tensor=True)
    return {"docs": len(texts), "seconds": time.perf_counter() - started}


def variant_physical_limit(corpus: Path, work: Path) -> dict:
    """The best 2048^3 fp32 matmul of both kernels torch ships: its default (MKL) and oneDNN's
    linear with a reordered weight (what our runtime uses where it is available). The limit
    is the faster of the two, so moving our matmuls to the faster kernel cannot flatter (a)/(e)."""
    import torch

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    kernels = {"mkl": lambda: a @ b}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        packed = torch.ops.mkldnn._reorder_linear_weight(b.T.contiguous(), None)
        kernels["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    rates = {}
    for name, kernel in kernels.items():
        kernel()
        best = 0.0
        for _ in range(5):
            started = time.perf_counter()
            kernel()
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
        rates[name] = best
    return {"flops_per_second": max(rates.values()), "by_kernel": rates}


VARIANTS = {
    "a": variant_ours,
    "a8": lambda corpus, work: variant_ours(corpus, work, "my-elser-model-int8"),
    "b256": lambda corpus, work: variant_beam_runinference(corpus, work, 256),
    "b2048": lambda corpus, work: variant_beam_runinference(corpus, work, 2048),
    "c": variant_plain_transformers,
    "d": variant_sentence_transformers,
    "e": variant_physical_limit,
}


def run_variant(name: str, corpus: Path, script: str = __file__) -> dict:
    """Run one variant of ``script`` (this one, or another benchmark with the same
    ``--variant`` entry point) in a fresh process; its JSON result comes back on stdout and
    its output stays in ``<corpus dir>/<name>/`` for the comparisons."""
    work = corpus.parent / name
    work.mkdir()
    done = subprocess.run(
        [sys.executable, script, "--variant", name, str(corpus), str(work)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["work"] = str(work)
    return result


# ---------------------------------------------------------------------------- report


def model_flops_per_token(mean_length: float) -> float:
    """Forward FLOPs per token of SPLADE-tiny (2 x multiply-adds), at the corpus' mean length."""
    from transformers import AutoConfig

    from inference_enrich.inference.models import resolve_model_path

    c = AutoConfig.from_pretrained(resolve_model_path("splade-tiny"))
    h, i, v, layers = c.hidden_size, c.intermediate_size, c.vocab_size, c.num_hidden_layers
    per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * mean_length * h  # projections + attention
    return layers * per_layer + 2 * h * h + 2 * h * v  # + MLM head transform + vocabulary


def max_weight_error(candidate: dict, reference: dict) -> float:
    worst = 0.0
    for doc_id, expected in reference.items():
        got = candidate[doc_id]
        for token in set(got) | set(expected):
            worst = max(worst, abs(got.get(token, 0.0) - expected.get(token, 0.0)))
    return worst


def top10_overlap(candidate: dict, reference: dict) -> float:
    """Mean overlap of the ten highest-weighted tokens (query-expansion terms) per document."""
    overlaps = []
    for doc_id, expected in reference.items():
        top = lambda w: set(sorted(w, key=w.get, reverse=True)[:10])
        overlaps.append(len(top(candidate[doc_id]) & top(expected)) / 10)
    return sum(overlaps) / len(overlaps)


QUERIES = [
    "open a file for reading", "raise an exception", "dictionary keys and values",
    "regular expression match", "thread synchronization lock", "decimal precision rounding",
    "socket connection timeout", "unicode string encoding", "sort a list in place",
    "date and time formatting", "random number generator seed", "parse command line arguments",
    "compress data with gzip", "environment variables", "run a subprocess and read its output",
    "garbage collection of objects", "class inheritance and method resolution order",
    "module search path for imports", "iterator protocol", "context manager with statement",
    "logging handler level", "hash value of an object", "floating point arithmetic errors",
    "network address parsing", "unit test assertions", "serialize objects to JSON",
    "pack binary data with struct", "file path manipulation", "deep copy of objects",
    "signal handlers",
]


def output_weights(work: str) -> dict[str, dict[str, float]]:
    import pyarrow.dataset as ds

    rows = ds.dataset(Path(work) / "out").to_table(columns=["id", "embedding"]).to_pylist()
    return {r["id"]: dict(r["embedding"]) for r in rows}


def retrieval_overlap(exact: dict, approx: dict) -> float:
    """Mean overlap of the top-10 documents per query (exact query vectors, dot product)."""
    from inference_enrich.inference import infer_texts, load_endpoints, load_runtime

    runtime = load_runtime(load_endpoints().get("my-elser-model"))
    overlaps = []
    for query in infer_texts(runtime, QUERIES):
        def top10(docs: dict) -> set:
            scores = {doc_id: sum(w * weights.get(t, 0.0) for t, w in query.embedding.items())
                      for doc_id, weights in docs.items()}
            return set(sorted(scores, key=scores.get, reverse=True)[:10])
        overlaps.append(len(top10(exact) & top10(approx)) / 10)
    return sum(overlaps) / len(overlaps)


def count_tokens(texts: list[str]) -> int:
    from transformers import AutoTokenizer

    from inference_enrich.inference.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("splade-tiny"))
    return sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"])


def report(docs: int, variants: list[str]) -> str:
    corpus = Path(tempfile.mkdtemp(prefix="bench-")) / "corpus.jsonl"
    records = build_corpus(docs)
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    tokens = count_tokens([r["text"] for r in records])
    results = {}
    for name in variants:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_variant(name, corpus)
    limit = results["e"]["flops_per_second"] / model_flops_per_token(tokens / docs)

    rows = []
    for name, label in [("a", "(a) ours, exact"), ("a8", "(a8) ours, fast (int8)"),
                        ("b256", "(b) Beam RunInference, weight 256"),
                        ("b2048", "(b) Beam RunInference, weight 2048"),
                        ("c", "(c) plain transformers loop"),
                        ("d", "(d) sentence-transformers SparseEncoder")]:
        if name not in results:
            continue
        r = results[name]
        n_tokens = r.get("tokens", tokens if r["docs"] == docs else None)
        rows.append((label, r["docs"] / r["seconds"], n_tokens / r["seconds"], r["peak_rss_mb"], r["seconds"], r["docs"]))
    rows.append(("(e) physical limit", None, limit, None, None, None))

    best_b = max((results[k]["docs"] / results[k]["seconds"] for k in ("b256", "b2048") if k in results), default=None)
    rate = lambda k: results[k]["docs"] / results[k]["seconds"]
    a_tokens_per_s = tokens / results["a"]["seconds"]
    lines = [
        f"Corpus: {docs:,} documents, {tokens:,} tokens (mean {tokens / docs:.0f}, truncated at 512), "
        f"SPLADE-tiny. Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"torch {__import__('torch').__version__}.",
        "",
        "| variant | docs/s | tokens/s | peak RSS MB | seconds | docs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, dps, tps, rss, secs, n in rows:
        fmt = lambda v, f: "" if v is None else format(v, f)
        lines.append(f"| {label} | {fmt(dps, ',.1f')} | {fmt(tps, ',.0f')} | {fmt(rss, ',.0f')} | {fmt(secs, '.1f')} | {fmt(n, ',')} |")
    lines += ["", "| ratio | value |", "| --- | ---: |"]
    if best_b:
        lines.append(f"| (a) / best (b), docs/s | {rate('a') / best_b:.2f}x |")
    if "c" in results:
        lines.append(f"| (a) / (c), docs/s | {rate('a') / rate('c'):.2f}x |")
    if "d" in results:
        lines.append(f"| (a) / (d), docs/s | {rate('a') / rate('d'):.2f}x |")
    lines.append(f"| (a) / (e), tokens/s | {a_tokens_per_s / limit:.0%} |")
    if "a8" in results and best_b:
        lines.append(f"| (a8) / best (b), docs/s | {rate('a8') / best_b:.2f}x |")
    lines += ["", f"Same weights as (c), the textbook computation, on the first {CHECK_DOCS} documents "
              "(max absolute difference of any weight):", ""]
    for name in ("a", "b256", "b2048", "a8"):
        if name in results and "c" in results:
            lines.append(f"- {name}: {max_weight_error(results[name]['weights'], results['c']['weights']):.2e}")
    if "a8" in results and "c" in results:
        lines.append(f"- a8, top-10 token overlap with exact, per document: "
                     f"{top10_overlap(results['a8']['weights'], results['c']['weights']):.1%}")
    if "a8" in results:
        overlap = retrieval_overlap(output_weights(results["a"]["work"]), output_weights(results["a8"]["work"]))
        lines.append(f"- a8, retrieval: top-10 documents for {len(QUERIES)} queries over the whole "
                     f"corpus, overlap with exact-mode documents: {overlap:.1%}")
    kernels = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in results["e"].get("by_kernel", {}).items())
    lines.append(f"\n(e) = {results['e']['flops_per_second'] / 1e9:.0f} GFLOP/s (best 2048^3 fp32 matmul; {kernels}) / "
                 f"{model_flops_per_token(tokens / docs) / 1e6:.2f} MFLOP per token.")
    return "\n".join(lines)


def scaling_report() -> str:
    lines = ["| docs | seconds | docs/s | peak RSS MB |", "| ---: | ---: | ---: | ---: |"]
    measured = {}
    for docs in (10_000, 100_000):
        work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        corpus = work / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in build_corpus(docs)))
        print(f"scaling: {docs} documents ...", file=sys.stderr, flush=True)
        r = run_variant("a", corpus)
        measured[docs] = r
        lines.append(f"| {docs:,} | {r['seconds']:.1f} | {docs / r['seconds']:,.1f} | {r['peak_rss_mb']:,.0f} |")
    small, large = measured[10_000], measured[100_000]
    lines += ["", f"time ratio (100k / 10k): {large['seconds'] / small['seconds']:.2f} (target <= 11); "
              f"peak RSS ratio: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (target <= 1.1)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Sparse-embedding throughput benchmark.")
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--variants", default="a,a8,b256,b2048,c,d,e")
    parser.add_argument("--scaling", action="store_true", help="also 10k vs 100k documents for (a)")
    parser.add_argument("--variant", nargs=3, metavar=("NAME", "CORPUS", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        name, corpus, work = args.variant
        result = VARIANTS[name](Path(corpus), Path(work))
        result.setdefault("peak_rss_mb", peak_rss_mb())
        print(json.dumps(result))
        return
    print(report(args.docs, args.variants.split(",")))
    if args.scaling:
        print()
        print(scaling_report())


if __name__ == "__main__":
    main()
