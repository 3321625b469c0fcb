"""The public API's two inference paths against each other, and against the job, in one run.

    python bench/bench_public_api.py                 # 1,500 documents, 2 rounds; prints Markdown

Variants (each in its own process via ``bench_sparse.run_variant``, same corpus):
  (a)        the job: ReadDocuments -> InferenceDoFn -> Parquet (``bench_sparse``'s variant)
  (enrich)   ReadFromText -> json.loads -> Enrich("my-elser-model") -> WriteToParquet
  (runinf)   ReadFromText -> json.loads -> (id, text) ->
             RunInference(KeyedModelHandler(EndpointModelHandler("my-elser-model"))) -> WriteToParquet

(enrich) and (runinf) differ only in the inference step: both read the JSONL with Beam's
``ReadFromText`` and write id + embedding with Beam's ``WriteToParquet``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sparse  # noqa: E402
from bench_sparse import (  # noqa: E402
    CHECK_DOCS,
    checked_weights,
    count_tokens,
    max_weight_error,
    peak_rss_mb,
    run_variant,
)
from corpus import build_corpus  # noqa: E402


def _public_api_pipeline(corpus: Path, work: Path, infer) -> dict:
    """ReadFromText -> json.loads -> ``infer`` (records -> {"id", "embedding"} dicts) -> Parquet."""
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = pa.schema([("id", pa.string()), ("embedding", pa.map_(pa.string(), pa.float32()))])
    started = time.perf_counter()
    with beam.Pipeline(argv=["--runner=FnApiRunner"]) as pipeline:
        _ = (
            pipeline
            | beam.io.ReadFromText(str(corpus))
            | "Parse" >> beam.Map(json.loads)
            | "Infer" >> infer
            | beam.io.WriteToParquet(str(work / "out" / "part"), schema, file_name_suffix=".parquet")
        )
    seconds, peak = time.perf_counter() - started, peak_rss_mb()
    return {"docs": ds.dataset(work / "out").count_rows(), "seconds": seconds, "peak_rss_mb": peak,
            "weights": checked_weights(corpus, work / "out")}


def variant_enrich(corpus: Path, work: Path) -> dict:
    import apache_beam as beam

    from inference_enrich import Enrich

    class EnrichToRows(beam.PTransform):
        def expand(self, records):
            enriched, _ = records | Enrich("my-elser-model")
            return enriched | beam.Map(lambda r: {"id": r["id"], "embedding": list(r["embedding"].items())})

    return _public_api_pipeline(corpus, work, EnrichToRows())


def variant_runinference(corpus: Path, work: Path) -> dict:
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    from inference_enrich import EndpointModelHandler

    class RunInferenceToRows(beam.PTransform):
        def expand(self, records):
            return (
                records
                | beam.Map(lambda r: (r["id"], r["text"]))
                | RunInference(KeyedModelHandler(EndpointModelHandler("my-elser-model")))
                | beam.Map(lambda kv: {"id": kv[0], "embedding": list(kv[1].inference.embedding.items())})
            )

    return _public_api_pipeline(corpus, work, RunInferenceToRows())


VARIANTS = {"enrich": variant_enrich, "runinf": variant_runinference}
LABELS = {
    "a": "(a) the job (ReadDocuments -> InferenceDoFn -> Parquet)",
    "enrich": "(enrich) Enrich over dicts",
    "runinf": "(runinf) RunInference(EndpointModelHandler)",
}


def report(docs: int, rounds: int) -> str:
    corpus_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    records = build_corpus(docs)
    (corpus_dir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tokens = count_tokens([r["text"] for r in records])
    runs: dict[str, list[dict]] = {name: [] for name in LABELS}
    for number in range(rounds):  # interleaved, so a slow spell of a shared machine hits all
        round_dir = corpus_dir / f"round-{number}"
        round_dir.mkdir()
        corpus = round_dir / "corpus.jsonl"
        corpus.symlink_to(corpus_dir / "corpus.jsonl")
        for name in LABELS:
            print(f"round {number + 1}: running {name} ...", file=sys.stderr, flush=True)
            script = bench_sparse.__file__ if name == "a" else __file__
            runs[name].append(run_variant(name, corpus, script))
    rates = {name: [r["docs"] / r["seconds"] for r in results] for name, results in runs.items()}
    lines = [
        f"Corpus: {docs:,} documents, {tokens:,} tokens (mean {tokens / docs:.0f}), SPLADE-tiny. "
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}. "
        f"{rounds} interleaved rounds; the table shows each variant's fastest.",
        "",
        "| variant | docs/s | tokens/s | peak RSS MB | seconds | docs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in LABELS.items():
        best = min(runs[name], key=lambda r: r["seconds"])
        lines.append(f"| {label} | {best['docs'] / best['seconds']:,.1f} | {tokens / best['seconds']:,.0f} | "
                     f"{best['peak_rss_mb']:,.0f} | {best['seconds']:.1f} | {best['docs']:,} |")
    per_round = lambda a, b: ", ".join(f"{x / y:.2f}x" for x, y in zip(rates[a], rates[b]))
    lines += [
        "",
        "| ratio | best runs | per round |",
        "| --- | ---: | ---: |",
        f"| (runinf) / (enrich), docs/s | {max(rates['runinf']) / max(rates['enrich']):.2f}x | {per_round('runinf', 'enrich')} |",
        f"| (enrich) / (a), docs/s | {max(rates['enrich']) / max(rates['a']):.2f}x | {per_round('enrich', 'a')} |",
        "",
        f"Max absolute weight difference on the first {CHECK_DOCS} documents: (runinf) vs (enrich) "
        f"{max_weight_error(runs['runinf'][0]['weights'], runs['enrich'][0]['weights']):.2e}, "
        f"(enrich) vs (a) {max_weight_error(runs['enrich'][0]['weights'], runs['a'][0]['weights']):.2e}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Enrich vs RunInference(EndpointModelHandler).")
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", nargs=3, metavar=("NAME", "CORPUS", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        name, corpus, work = args.variant
        print(json.dumps(VARIANTS[name](Path(corpus), Path(work))))
        return
    print(report(args.docs, args.rounds))


if __name__ == "__main__":
    main()
