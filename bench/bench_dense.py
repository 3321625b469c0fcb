"""Dense embeddings (``my-minilm``): our job against sentence-transformers, whole processes.

    python bench/bench_dense.py                      # 3,000 documents, 2 rounds, Markdown report
    python bench/bench_dense.py --docs 3000 --rounds 3 --variants ours,st

Variants, each a fresh process, started in turn within each round (A B A B ...) so both see
the same machine load:
  ours  ``enrich run --inference-id my-minilm``: JSONL -> Beam FnApiRunner -> Parquet
  ours-big  the same with ``--max-batch-tokens 16384 --max-batch-size 512`` (bigger
        matmuls: the packed forward pass wastes no padding in them)
  st    sentence-transformers ``SentenceTransformer.encode(batch_size=32)`` on the same
        JSONL, vectors written to Parquet (the peer: imports, load, encode, write)

Per run: wall seconds, CPU seconds (user + sys of the process and its children) and the
1-minute load average at the start. Exactness: every document's vector from ``ours`` against
``st``'s, largest absolute difference (the goal: <= 1e-5).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from corpus import build_corpus  # noqa: E402

PEER = r"""
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
from sentence_transformers import SentenceTransformer
from inference_enrich.inference.models import resolve_model_path
docs = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
model = SentenceTransformer(resolve_model_path("all-minilm-l6-v2"), device="cpu")
vectors = model.encode([d["text"] for d in docs], batch_size=32, convert_to_numpy=True)
dim = vectors.shape[1]
column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
pq.write_table(pa.table({"id": [d["id"] for d in docs], "embedding": column}), sys.argv[2] + "/st.parquet")
"""


def command(variant: str, corpus: Path, out: Path) -> list[str]:
    if variant in ("ours", "ours-big"):
        enrich = str(Path(sys.executable).with_name("enrich"))
        batching = ["--max-batch-tokens", "16384", "--max-batch-size", "512"] if variant == "ours-big" else []
        return [enrich, "run", "--input", str(corpus), "--output", str(out), "--inference-id", "my-minilm",
                "--quiet", *batching]
    if variant == "st":
        out.mkdir(parents=True)
        return [sys.executable, "-c", PEER, str(corpus), str(out)]
    raise ValueError(variant)


def timed(argv: list[str]) -> dict:
    """Wall and CPU seconds of one whole process (``RUSAGE_CHILDREN`` deltas)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "load": load}


def vectors(out: Path) -> dict[str, list[float]]:
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet").to_table(columns=["id", "embedding"])
    return dict(zip(table["id"].to_pylist(), table["embedding"].to_pylist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="ours,st")
    args = parser.parse_args()
    variants = args.variants.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-dense-"))
    corpus = work / "corpus.jsonl"
    documents = build_corpus(args.docs)
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            out = work / f"{variant}-{round_}"
            result = timed(command(variant, corpus, out))
            result["out"] = out
            runs[variant].append(result)
            print(f"round {round_} {variant}: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU, "
                  f"load {result['load']:.1f}", file=sys.stderr)
    print(f"{args.docs} documents (bench/corpus.py), {args.rounds} rounds, variants interleaved\n")
    print("| variant | round | wall s | CPU s (user+sys) | load avg (1 min) at start |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for variant in variants:
        for round_, r in enumerate(runs[variant]):
            print(f"| {variant} | {round_} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['load']:.1f} |")
    if {"ours", "st"} <= set(variants):
        best = {v: (min(r["wall"] for r in runs[v]), min(r["cpu"] for r in runs[v])) for v in ("ours", "st")}
        print(f"\nours vs st, best of {args.rounds}: wall {best['st'][0] / best['ours'][0]:.2f}x, "
              f"CPU {best['st'][1] / best['ours'][1]:.2f}x")
        per_round = [s["wall"] / o["wall"] for o, s in zip(runs["ours"], runs["st"])]
        print("per round, wall: " + ", ".join(f"{x:.2f}x" for x in per_round))
        if "ours-big" in runs:
            big = runs["ours-big"]
            print(f"ours-big vs st, best of {args.rounds}: wall {best['st'][0] / min(r['wall'] for r in big):.2f}x, "
                  f"CPU {best['st'][1] / min(r['cpu'] for r in big):.2f}x")
        ours, theirs = vectors(runs["ours"][0]["out"]), vectors(runs["st"][0]["out"])
        assert ours.keys() == theirs.keys(), "the two runs embedded different documents"
        worst = max(max(abs(a - b) for a, b in zip(ours[k], theirs[k])) for k in ours)
        print(f"largest absolute difference, all {len(ours)} vectors: {worst:.2e}")


if __name__ == "__main__":
    main()
