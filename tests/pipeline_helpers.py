"""Run the real enrichment pipeline in tests and read back what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pyarrow.dataset as ds
from apache_beam.options.pipeline_options import PipelineOptions

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import JobSummary, run_job

IN_PROCESS = ["--runner=FnApiRunner"]


def run(job: JobConfig, beam_args: list[str] = IN_PROCESS) -> JobSummary:
    return run_job(job, PipelineOptions(beam_args))


def read_output(output: str) -> dict[str, dict]:
    """Enriched rows by id (asserting ids are unique)."""
    fs, path = fsspec.core.url_to_fs(output)
    rows = ds.dataset(path, filesystem=fs, format="parquet").to_table().to_pylist()
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(rows), "duplicate ids in output"
    return by_id


def read_dead_letters(output: str) -> list[dict]:
    fs, path = fsspec.core.url_to_fs(output)
    letters = []
    for part in sorted(fs.glob(f"{path}/_dead_letter/part-*.jsonl")):
        with fs.open(part, "rt", encoding="utf-8") as stream:
            letters.extend(json.loads(line) for line in stream)
    return letters


def sparse(row: dict, field: str = "embedding") -> dict[str, float]:
    return dict(row[field])


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path
