"""The enrichment graph: source -> ``EnrichDocuments`` -> Parquet or a search index, with
dead letters beside it. ``build_pipeline`` only wires transforms, so that ``enrich run``
(``pipelines/enrich.py``), a dry run and tests build the same graph.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import apache_beam as beam

from inference_enrich.indexes import IndexSpec
from inference_enrich.inference import Endpoint, load_endpoints
from inference_enrich.inference.api import embedding_dimensions
from inference_enrich.inference.results import EMBEDDING_TASK_TYPES
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.output_guard import replaces_output
from inference_enrich.transforms.bundle_files import CommitManifest, RunFiles
from inference_enrich.transforms.dead_letter_digest import CountDigestKeys, GatherDigest, describe_dead_letters
from inference_enrich.transforms.dead_letters import WriteDeadLetters
from inference_enrich.transforms.documents import DEAD_LETTER_TAG, RecordFields
from inference_enrich.transforms.inference_dofn import BatchingConfig, EnrichDocuments
from inference_enrich.transforms.kafka import PartitionRange, commit_end_offsets
from inference_enrich.transforms.kafka.reader import ReadKafkaDocuments
from inference_enrich.transforms.publishing.write_and_publish import PublishOutput
from inference_enrich.transforms.read_files import ReadDocuments
from inference_enrich.transforms.write_index import WriteToSearchIndex
from inference_enrich.transforms.write_parquet import WriteEnrichedParquet, enriched_schema


def resolve_endpoint(job: JobConfig) -> Endpoint:
    """The job's endpoint, from the job's (or the packaged) endpoints file; one whose results
    are not embeddings (rerank) is refused here, before any work."""
    endpoint = load_endpoints(job.endpoints).get(job.inference_id)
    if endpoint.task_type not in EMBEDDING_TASK_TYPES:
        raise ValueError(f"endpoint '{endpoint.inference_id}' is a {endpoint.task_type} endpoint; the job "
                         f"embeds documents with a {' or '.join(EMBEDDING_TASK_TYPES)} endpoint")
    return endpoint


def build_pipeline(
    pipeline: beam.Pipeline,
    job: JobConfig,
    endpoint: Endpoint,
    run_files: RunFiles,
    partitions: Sequence[PartitionRange] = (),
    match_inputs: bool = True,
) -> None:
    """Add the enrichment graph for ``job`` to ``pipeline``, staging its files as
    ``run_files`` says (``partitions``: the Kafka offset ranges planned at launch, for the
    Kafka source; ``match_inputs=False``: the input patterns stand for the files, unlisted,
    as a dry run wants). With ``publish: pipeline`` a batch pipeline publishes its output and
    then commits those ranges' end offsets as its last step."""
    fields = RecordFields(job.text_field, job.id_field)
    chunked = endpoint.chunking_settings is not None
    enriched_schema(job.text_field, job.output_field, endpoint.task_type, chunked)  # fail fast on names
    source: beam.PTransform
    if job.source == "kafka":
        source = ReadKafkaDocuments(job.kafka_settings(), fields, partitions)
    else:
        source = ReadDocuments(job.input, job.format, fields, match=match_inputs)
    read = pipeline | "ReadDocuments" >> source
    batching = BatchingConfig(job.max_batch_tokens, job.max_batch_size)
    enriched = read.documents | "Enrich" >> EnrichDocuments(endpoint, batching, job.num_threads)
    dead_letters = [read[DEAD_LETTER_TAG], enriched[DEAD_LETTER_TAG]]
    written: list[beam.PCollection] = []  # names of the files each sink staged
    if job.sink == "parquet":
        written.append(enriched.enriched | "WriteParquet" >> WriteEnrichedParquet(
            run_files, job.text_field, job.output_field, endpoint.task_type, chunked=chunked
        ))
    else:
        spec = IndexSpec(job.text_field, job.output_field, endpoint.task_type,
                         embedding_dimensions(endpoint), chunked=chunked)
        dead_letters.append(
            enriched.enriched | "WriteIndex" >> WriteToSearchIndex(job.index_settings(), spec)
        )
    all_dead = tuple(dead_letters) | "AllDeadLetters" >> beam.Flatten()
    written.append(all_dead | "WriteDeadLetters" >> WriteDeadLetters(run_files))
    digest_keys = all_dead | "DigestDeadLetters" >> beam.ParDo(CountDigestKeys())
    if not run_files.streaming:
        manifest = (
            tuple(written)
            | "AllWrittenFiles" >> beam.Flatten()
            | "CommitManifest" >> CommitManifest(run_files)
        )
        if job.publish == "pipeline":
            # Exact element counts (not metrics, which retries can inflate): every record read
            # must have reached a writer, as output or as a dead letter, before anything is
            # published or any Kafka offset committed.
            read_total = ((read.documents, read[DEAD_LETTER_TAG])
                          | "AllRead" >> beam.Flatten()
                          | "CountRead" >> beam.combiners.Count.Globally())
            landed_total = ((enriched.enriched, enriched[DEAD_LETTER_TAG], read[DEAD_LETTER_TAG])
                            | "AllLanded" >> beam.Flatten()
                            | "CountLanded" >> beam.combiners.Count.Globally())
            dead_total = all_dead | "CountDeadLetters" >> beam.combiners.Count.Globally()
            commit = partial(commit_end_offsets, job.kafka_settings(), tuple(partitions)) if partitions else None
            describe = partial(describe_dead_letters, text_field=job.text_field, id_field=job.id_field)
            _ = manifest | "PublishOutput" >> beam.ParDo(
                PublishOutput(run_files, replace=replaces_output(job), after_publish=commit,
                              max_dead_letter_ratio=job.max_dead_letter_ratio, describe=describe),
                beam.pvalue.AsSingleton(read_total), beam.pvalue.AsSingleton(landed_total),
                beam.pvalue.AsSingleton(dead_total),
                beam.pvalue.AsSingleton(digest_keys | "GatherDigest" >> GatherDigest()))
