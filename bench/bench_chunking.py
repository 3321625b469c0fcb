"""Chunked against unchunked enrichment on the same tokens, in one run (issue #12).

    OMP_NUM_THREADS=1 python bench/bench_chunking.py            # 150 documents, 2 rounds; prints Markdown

The corpus has a long tail of lengths: real prose (``corpus.py``'s source) cut into documents
of 20 to 3,000 words, log-uniform, so most are short and a few are far past the model's 512
tokens. Both variants run the job (ReadDocuments -> InferenceDoFn -> Parquet, FnApiRunner)
with SPLADE-tiny:

  (chunked)    the documents, through an endpoint with ``chunking_settings: {}`` (sentence,
               250 words, overlap 1): the DoFn cuts them and batches the chunks together;
  (unchunked)  the very chunk texts, cut beforehand, as documents of their own, through the
               same endpoint without chunking settings.

The model therefore sees the same token sequences in both (the script checks the token
counts are equal): the difference is what chunking costs inside the job (ICU segmentation,
planning, reassembling per document). Goal: chunked within 10% of unchunked tokens/s.
Rounds are interleaved and each variant's fastest is reported, in wall time and in this
process's CPU time (the FnApiRunner runs the job in-process; CPU time is less disturbed by
other processes on a shared machine than wall time); the weights of both are compared chunk
by chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import paragraphs  # noqa: E402

MIN_WORDS, MAX_WORDS = 20, 3000
ENDPOINT = {"task_type": "sparse_embedding", "service": "transformers", "service_settings": {"model_id": "splade-tiny"}}


def long_tail_corpus(count: int, seed: int = 11) -> list[dict]:
    """``count`` documents of real prose, log-uniform lengths from 20 to 3,000 words."""
    rng = random.Random(seed)
    words = [w for paragraph in paragraphs() for w in paragraph.split()]
    documents, position = [], 0
    for number in range(count):
        length = int(round(MIN_WORDS * (MAX_WORDS / MIN_WORDS) ** rng.random()))
        if position + length > len(words):
            position = rng.randrange(0, 1000)
        documents.append({"id": f"doc-{number:05d}", "text": " ".join(words[position:position + length])})
        position += length
    return documents


def write_inputs(work: Path, documents: list[dict]) -> dict[str, Path]:
    """The documents (JSONL), their chunk texts as documents (JSONL), and an endpoints file
    with the same model chunked and not."""
    import yaml

    from inference_enrich.inference.chunking import chunk, parse_chunking_settings

    settings = parse_chunking_settings({})
    with (work / "documents.jsonl").open("w", encoding="utf-8") as whole, \
            (work / "chunks.jsonl").open("w", encoding="utf-8") as pieces:
        for document in documents:
            whole.write(json.dumps(document) + "\n")
            for number, (start, end) in enumerate(chunk(document["text"], settings)):
                pieces.write(json.dumps({"id": f"{document['id']}/{number}", "text": document["text"][start:end]}) + "\n")
    endpoints = {"whole": ENDPOINT, "chunked": {**ENDPOINT, "chunking_settings": {}}}
    (work / "endpoints.yaml").write_text(yaml.safe_dump({"endpoints": endpoints}), encoding="utf-8")
    return {"chunked": work / "documents.jsonl", "unchunked": work / "chunks.jsonl"}


def run_variant(name: str, corpus: Path, work: Path, round_number: int) -> dict:
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.config import JobConfig
    from inference_enrich.pipelines.enrich import run_job

    output = work / f"out-{name}-{round_number}"
    job = JobConfig(input=[str(corpus)], output=str(output), endpoints=str(work / "endpoints.yaml"),
                    inference_id="chunked" if name == "chunked" else "whole")
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = run_job(job, PipelineOptions(["--runner=FnApiRunner"]))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "tokens": summary.tokens,
            "docs": summary.records_written, "dead": summary.dead_letters, "output": output}


def chunk_weights(name: str, output: Path) -> dict[tuple[str, int], dict[str, float]]:
    """Weights per (document id, chunk number), from either variant's Parquet."""
    import pyarrow.dataset as ds

    rows = ds.dataset(output).to_table(columns=["id", "embedding"]).to_pylist()
    if name == "unchunked":
        return {(row["id"].rsplit("/", 1)[0], int(row["id"].rsplit("/", 1)[1])): dict(row["embedding"]) for row in rows}
    return {(row["id"], number): dict(piece["embedding"])
            for row in rows for number, piece in enumerate(row["embedding"])}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), "the variants embedded different chunks"
    return max((abs(a[k].get(t, 0.0) - b[k].get(t, 0.0)) for k in a for t in {*a[k], *b[k]}), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    documents = long_tail_corpus(args.docs)
    lengths = sorted(len(d["text"].split()) for d in documents)
    with tempfile.TemporaryDirectory(prefix="bench-chunking-") as directory:
        work = Path(directory)
        corpora = write_inputs(work, documents)
        chunk_count = sum(1 for _ in corpora["unchunked"].open(encoding="utf-8"))
        runs: dict[str, list[dict]] = {"chunked": [], "unchunked": []}
        for round_number in range(args.rounds):
            order = ["chunked", "unchunked"] if round_number % 2 == 0 else ["unchunked", "chunked"]
            for name in order:
                runs[name].append(run_variant(name, corpora[name], work, round_number))
                print(f"round {round_number + 1} {name}: {runs[name][-1]['seconds']:.1f} s, "
                      f"{runs[name][-1]['cpu_seconds']:.1f} CPU s", file=sys.stderr)
        tokens = {name: {run["tokens"] for run in variant} for name, variant in runs.items()}
        assert tokens["chunked"] == tokens["unchunked"] and len(tokens["chunked"]) == 1, tokens
        (token_count,) = tokens["chunked"]
        difference = max_difference(chunk_weights("chunked", runs["chunked"][0]["output"]),
                                    chunk_weights("unchunked", runs["unchunked"][0]["output"]))
    best = {name: min(variant, key=lambda run: run["seconds"]) for name, variant in runs.items()}
    best_cpu = {name: min(run["cpu_seconds"] for run in variant) for name, variant in runs.items()}
    rate = {name: token_count / run["seconds"] for name, run in best.items()}
    cpu_rate = {name: token_count / seconds for name, seconds in best_cpu.items()}
    per_round = [u["seconds"] / c["seconds"] for c, u in zip(runs["chunked"], runs["unchunked"])]
    per_round_cpu = [u["cpu_seconds"] / c["cpu_seconds"] for c, u in zip(runs["chunked"], runs["unchunked"])]
    print(f"Corpus: {args.docs} documents of {lengths[0]} to {lengths[-1]} words (median "
          f"{lengths[len(lengths) // 2]}, {sum(w > 380 for w in lengths)} past ~512 tokens), "
          f"{chunk_count} chunks, {token_count:,} tokens (sentence, 250 words, overlap 1), SPLADE-tiny. "
          f"Machine: {os.cpu_count()} cores, {platform.machine()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}. {args.rounds} interleaved rounds; fastest of each.\n")
    print("| variant | documents | seconds | tokens/s | CPU seconds | tokens per CPU second |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, run in best.items():
        print(f"| ({name}) | {run['docs']:,} | {run['seconds']:.1f} | {rate[name]:,.0f} "
              f"| {best_cpu[name]:.1f} | {cpu_rate[name]:,.0f} |")
    print(f"\nchunked / unchunked tokens/s: {rate['chunked'] / rate['unchunked']:.2f} (best runs); per round "
          + ", ".join(f"{ratio:.2f}" for ratio in per_round)
          + f". Per CPU second: {cpu_rate['chunked'] / cpu_rate['unchunked']:.2f} (best runs); per round "
          + ", ".join(f"{ratio:.2f}" for ratio in per_round_cpu)
          + f". Max weight difference per chunk between the variants: {difference:.2e}.")


if __name__ == "__main__":
    main()
