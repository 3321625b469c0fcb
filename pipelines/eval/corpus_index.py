"""The corpus of a BEIR directory enriched by the real job into an index, kept under a key of
corpus, endpoint and cluster so that the next eval of the same corpus reuses it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from inference_enrich.indexes import IndexSettings, open_index
from inference_enrich.inference import Endpoint
from inference_enrich.pipelines.eval.beir import Beir


def default_cache_dir() -> Path:
    """Where enriched corpora are kept between evals: $XDG_CACHE_HOME/inference-enrich/eval."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inference-enrich" / "eval"


def enriched_index(beir: Beir, endpoint: Endpoint, base: IndexSettings, cache_dir: Path,
                   endpoints_file: str | None, log=print) -> IndexSettings:
    """The index holding ``beir``'s corpus enriched by ``endpoint``: reused when an earlier
    eval built it completely (same corpus, same endpoint, same cluster), else built now by
    the real job. Nothing is published unless every document was indexed."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from inference_enrich.pipelines.config import JobConfig
    from inference_enrich.pipelines.enrich import run_job

    key = hashlib.sha256(f"{beir.corpus_digest} {endpoint.fingerprint()} {base.kind} {base.url}".encode()).hexdigest()[:16]
    work = cache_dir / key
    settings = dataclasses.replace(base, index=f"enrich-eval-{key}", path=str(work / "index"))
    if _holds(settings, len(beir.corpus)):
        log(f"enrich eval: reusing {settings.describe()} ({len(beir.corpus)} documents, {endpoint.inference_id})")
        return settings
    work.mkdir(parents=True, exist_ok=True)
    corpus_file = work / "corpus.jsonl"
    with corpus_file.open("w", encoding="utf-8") as out:
        for doc_id, text in beir.corpus.items():
            out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    job = JobConfig(input=[str(corpus_file)], format="jsonl", inference_id=endpoint.inference_id,
                    endpoints=endpoints_file, sink=settings.kind, es_url=settings.url, index=settings.index,
                    index_path=settings.path, output=str(work / "run"), username=settings.username,
                    api_key_file=settings.api_key_file, password_file=settings.password_file,
                    ca_certs=settings.ca_certs, verify_certs=settings.verify_certs)
    log(f"enrich eval: enriching {len(beir.corpus)} documents with {endpoint.inference_id} into {settings.describe()}")
    summary = run_job(job, PipelineOptions(["--runner=FnApiRunner"]))
    if summary.dead_letters or summary.index_documents != len(beir.corpus):
        raise ValueError(f"enriching the corpus left {summary.dead_letters} dead letters and "
                         f"{summary.index_documents} of {len(beir.corpus)} documents in {settings.describe()} "
                         f"(see {work / 'run'}/_dead_letter)")
    log(f"enrich eval: enriched in {summary.seconds:.0f} s ({summary.docs_per_second:.0f} docs/s)")
    return settings


def _holds(settings: IndexSettings, documents: int) -> bool:
    """Whether the index exists and holds exactly ``documents`` documents."""
    if settings.kind == "embedded" and not (Path(settings.path or "") / "index.json").is_file():
        return False
    index = open_index(settings)
    try:
        return index.count() == documents
    except ValueError:  # no such index
        return False
    finally:
        index.close()
