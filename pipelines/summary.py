"""The human-readable report printed at the end of ``enrich run``."""

from __future__ import annotations

import json

import fsspec
import pyarrow.parquet as pq

from inference_enrich.inference import Endpoint
from inference_enrich.inference.results import SPARSE_EMBEDDING
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import JobSummary
from inference_enrich.transforms.publishing.output_dir import SUCCESS
from inference_enrich.transforms.dead_letters import dead_letter_directory

TOP_TOKENS_SHOWN = 10


def format_summary(summary: JobSummary, endpoint: Endpoint, job: JobConfig) -> str:
    lines = [
        f"Enriched with {endpoint.inference_id} ({endpoint.task_type}, {endpoint.model_id}) "
        f"in {summary.seconds:.1f} s",
        f"  records in      {summary.records_read:>10,}",
        f"  records out     {summary.records_written:>10,}",
        f"  dead-lettered   {summary.dead_letters:>10,}"
        + (f"   -> {dead_letter_directory(job.output)}/" if summary.dead_letters else ""),
        *([f"                  {summary.dead_letter_digest}"] if summary.dead_letter_digest else []),
        _work_line(summary, endpoint),
        f"  throughput      {summary.docs_per_second:>10,.1f} docs/s (whole job, start-up included)",
    ]
    if summary.files_cut_short:
        lines.append(
            f"  files cut short {summary.files_cut_short:>10,}   could not be read past a point: the rest of "
            f"each is one dead letter with stage 'read' (exit status 3)"
        )
    if job.sink != "parquet":
        lines.append(f"  output          {summary.output} ({summary.index_documents:,} documents)")
        if summary.tokens_renamed:
            lines.append(f"  renamed tokens  {summary.tokens_renamed:>10,}   ('.' -> U+2024, see README)")
        return "\n".join(lines)
    if not summary.records_written:
        lines.append(f"  output          no records written to {job.output}")
        return "\n".join(lines)
    lines.append(
        f"  output          {job.output}/part-*.parquet   (pyarrow.dataset.dataset({job.output!r}))"
    )
    example = _first_record(job)
    if example is not None:
        lines.append(_describe_example(example, endpoint, job))
    return "\n".join(lines)


def _work_line(summary: JobSummary, endpoint: Endpoint) -> str:
    """Tokens, counted here where the endpoint tokenises locally; else the tokens its
    service reports, or the characters sent (a zero would be a false count)."""
    truncated = f"{summary.truncated:,} truncated"
    if endpoint.service_info.tokenizes_locally:
        return f"  tokens          {summary.tokens:>10,}   ({summary.tokens_per_second:,.0f} tokens/s, {truncated})"
    if summary.tokens:
        return (f"  tokens          {summary.tokens:>10,}   (as the service reports them, "
                f"{summary.tokens_per_second:,.0f} tokens/s, {truncated})")
    per_second = summary.characters / summary.seconds if summary.seconds else 0.0
    return (f"  characters      {summary.characters:>10,}   ({per_second:,.0f} characters/s, {truncated}; "
            "the service reports no token counts)")


def _first_record(job: JobConfig) -> dict | None:
    """The first record of the Parquet files enrich published (``_SUCCESS`` lists them;
    the directory may hold other files named ``part-*``)."""
    fs, path = fsspec.core.url_to_fs(job.output)
    try:
        published = json.loads(fs.cat_file(f"{path}/{SUCCESS}")).get("published", [])
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    parts = sorted(f"{path}/{name}" for name in published if name.endswith(".parquet") and "/" not in name)
    for part in parts:
        with fs.open(part, "rb") as stream:
            parquet = pq.ParquetFile(stream)
            table = parquet.read_row_group(0) if parquet.num_row_groups else None
        if table is not None and table.num_rows:
            return table.slice(0, 1).to_pylist()[0]
    return None


def _describe_example(record: dict, endpoint: Endpoint, job: JobConfig) -> str:
    text = record[job.text_field]
    snippet = text if len(text) <= 70 else text[:67] + "..."
    result = record[job.output_field]
    heading = f"Example {record['id']}: \"{snippet}\"\n  "
    if endpoint.chunking_settings is not None:  # a list of chunks: show the first one
        first = result[0]
        heading += f"{len(result)} chunks, the first [{first['start_offset']}:{first['end_offset']}] "
        result = first["embedding"]
    if endpoint.task_type == SPARSE_EMBEDDING:
        top = sorted(result, key=lambda pair: pair[1], reverse=True)[:TOP_TOKENS_SHOWN]
        shown = ", ".join(f"{token} {weight:.2f}" for token, weight in top)
        return f"{heading}top tokens: {shown}"
    shown = ", ".join(f"{v:.4f}" for v in result[:5])
    return f"{heading}{len(result)} dims: [{shown}, ...]"
