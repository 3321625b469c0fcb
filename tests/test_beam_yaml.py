"""Beam YAML (README "Deploy" > "Beam YAML"): configs/enrich.beam.yaml, run by
``apache_beam.yaml.main`` exactly as the README says, writes what ``enrich run`` writes for
the same input; dead letters follow Beam YAML's error_handling convention; the search-index
writer works from YAML too. Real runners (FnApiRunner), the real model, real files."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from inference_enrich.indexes import IndexSettings, open_index
from inference_enrich.pipelines.config import JobConfig, sample_corpus_path
from inference_enrich.transforms.beam_yaml import providers_block

from pipeline_helpers import read_dead_letters, read_output, run, sparse, write_lines

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "enrich.beam.yaml"
PROVIDERS = "\n" + providers_block()


def readme_command() -> list[str]:
    """The Beam YAML command of the README's Deploy section, as argv."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Beam YAML", 1)[1].split("\n#", 1)[0]
    match = re.search(r"^    (\.venv/bin/python -m apache_beam\.yaml\.main .*?)(?:\n\n|\Z)", section,
                      re.MULTILINE | re.DOTALL)
    assert match, "README: no Beam YAML command in Deploy > Beam YAML"
    argv = shlex.split(match.group(1).replace("\\\n", " "))
    assert argv[:3] == [".venv/bin/python", "-m", "apache_beam.yaml.main"]
    return [sys.executable, *argv[1:]]


def beam_yaml(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=900)
    return done


def comparable(rows: dict[str, dict]) -> dict[str, tuple]:
    return {key: (row["text"], row["is_truncated"], json.loads(row["passthrough"])) for key, row in rows.items()}


def assert_same_enrichment(yaml_output: str, job_output: str) -> None:
    yaml_rows, job_rows = read_output(yaml_output), read_output(job_output)
    assert comparable(yaml_rows) == comparable(job_rows)
    for key, row in job_rows.items():
        assert sparse(yaml_rows[key]) == pytest.approx(sparse(row), abs=1e-6), key


def test_readme_command_runs_the_example_and_writes_what_enrich_run_writes(tmp_path):
    """The README command, unchanged, from a directory laid out like the repository."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "sample_data").mkdir()
    (tmp_path / "sample_data" / "sample_corpus.jsonl").symlink_to(sample_corpus_path())
    done = beam_yaml(readme_command(), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    job_output = str(tmp_path / "job")
    summary = run(JobConfig(output=job_output))
    assert summary.records_written == 41
    assert_same_enrichment(str(tmp_path / "enrich-output-yaml"), job_output)
    assert read_dead_letters(str(tmp_path / "enrich-output-yaml")) == []
    # As the README says: both directories published, no staging left, a line for each.
    output = tmp_path / "enrich-output-yaml"
    assert (output / "_SUCCESS").exists() and (output / "_dead_letter" / "_SUCCESS").exists()
    assert not list(output.rglob(".staging-*"))
    assert re.search(r"^published [1-9]\d* file\(s\) in enrich-output-yaml$", done.stdout, re.MULTILINE)
    assert "published 0 file(s) in enrich-output-yaml/_dead_letter" in done.stdout.splitlines()
    # Beam's launcher logs at INFO; its ~70 notes on our string type hints are dropped.
    assert "Converting string literal type hint" not in done.stderr


def test_dead_letters_of_the_example_equal_the_jobs(tmp_path):
    lines = Path(sample_corpus_path()).read_bytes().splitlines()[:6]
    source = write_lines(tmp_path / "in.jsonl", [
        *lines[:3], b"not json", b'{"id": "empty", "text": "  "}', *lines[3:],
        b'{"id": "number", "text": 7, "year": 1900}',
    ])
    yaml_output, job_output = str(tmp_path / "yaml"), str(tmp_path / "job")
    variables = json.dumps({"input": str(source), "output": yaml_output})
    done = beam_yaml([sys.executable, "-m", "apache_beam.yaml.main", f"--yaml_pipeline_file={EXAMPLE}",
                      "--runner=FnApiRunner", f"--jinja_variables={variables}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = run(JobConfig(input=[str(source)], output=job_output))
    assert (summary.records_written, summary.dead_letters) == (6, 3)
    assert_same_enrichment(yaml_output, job_output)
    by_line = lambda letters: sorted(letters, key=lambda letter: letter["line"])
    yaml_letters, job_letters = by_line(read_dead_letters(yaml_output)), by_line(read_dead_letters(job_output))
    assert yaml_letters == job_letters  # stage, error, source, line and record or raw, all equal
    assert [(letter["stage"], letter["line"]) for letter in yaml_letters] == [
        ("parse", 4), ("validate", 5), ("validate", 9)]
    assert yaml_letters[2]["record"] == {"id": "number", "text": 7, "year": 1900}


def test_without_error_handling_a_bad_record_fails_the_pipeline(tmp_path):
    """Beam YAML's convention: no error_handling, no silent loss: the run fails and says why."""
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": "a", "text": "fine"}', b"not json"])
    pipeline = f"""
pipeline:
  transforms:
    - type: ReadDocuments
      config: {{path: "{source}"}}
{PROVIDERS}"""
    done = beam_yaml([sys.executable, "-m", "apache_beam.yaml.main", f"--yaml_pipeline={pipeline}",
                      "--runner=FnApiRunner"], tmp_path)
    assert done.returncode != 0
    assert "DeadLetterError: a record failed at stage 'parse'" in done.stderr
    assert f"{source}:2" in done.stderr
    assert "error_handling" in done.stderr


def test_yaml_rows_enriched_into_the_embedded_index_with_index_dead_letters_consumed(tmp_path):
    index_path = tmp_path / "idx"
    pipeline = f"""
pipeline:
  transforms:
    - type: Create
      config:
        elements:
          - {{doc: d1, body: "Call me Ishmael. Some years ago I went to sea."}}
          - {{doc: d2, body: "The sky above the port was the color of television."}}
          - {{doc: d3, body: ""}}
    - type: Enrich
      input: Create
      config:
        inference_id: my-elser-model
        text_field: body
        id_field: doc
        output_field: tokens
        error_handling: {{output: failed}}
    - type: WriteToSearchIndex
      input: Enrich
      config:
        sink: embedded
        path: "{index_path}"
        inference_id: my-elser-model
        text_field: body
        output_field: tokens
        error_handling: {{output: rejected}}
    - type: WriteToJson
      input: [Enrich.failed, WriteToSearchIndex.rejected]
      config: {{path: "{tmp_path / 'letters'}"}}
{PROVIDERS}"""
    done = beam_yaml([sys.executable, "-m", "apache_beam.yaml.main", f"--yaml_pipeline={pipeline}",
                      "--runner=FnApiRunner"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    index = open_index(IndexSettings("embedded", path=str(index_path)))
    try:
        assert index.count() == 2
        hits = index.search({"sea": 1.0, "whale": 1.0}, "tokens", 1)
    finally:
        index.close()
    assert hits[0].doc_id == "d1" and hits[0].source["body"].startswith("Call me Ishmael")
    (letters_file,) = tmp_path.glob("letters*")
    (letter,) = [json.loads(line) for line in letters_file.read_text().splitlines()]
    assert (letter["stage"], letter["error"]) == ("validate", "text field 'body' is empty")
    assert json.loads(letter["record"]) == {"doc": "d3", "body": ""}


def test_the_yaml_writers_take_a_chunking_endpoints_output(tmp_path):
    """The YAML Parquet writer is set up from the endpoint, chunking included: a chunking
    endpoint's records land as chunk lists (before, they reached the writer as one embedding
    and failed)."""
    import apache_beam as beam
    import yaml

    from inference_enrich.transforms import beam_yaml

    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"endpoints": {"chunked": {
        "task_type": "sparse_embedding", "service": "transformers",
        "service_settings": {"model_id": "splade-tiny"},
        "chunking_settings": {"strategy": "word", "max_chunk_size": 10, "overlap": 2}}}}))
    text = " ".join(f"word{i}" for i in range(35))
    output = tmp_path / "out"
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        enriched = (pipeline | beam.Create([{"id": "long", "text": text}])
                    | beam_yaml.Enrich("chunked", str(endpoints)))["enriched"]
        _ = enriched | beam_yaml.WriteEnrichedParquet(str(output), "chunked", str(endpoints))
    (row,) = read_output(str(output)).values()
    spans = [(chunk["start_offset"], chunk["end_offset"]) for chunk in row["embedding"]]
    assert len(spans) == 5 and spans[0][0] == 0 and spans[-1][1] == len(text)


@pytest.mark.parametrize("result, chunked, error", [
    ("chunks", False, "document 'd' has a ChunkedEmbedding, but the output is not chunked"),
    ("whole", True, "document 'd' has a SparseEmbedding, but the output is chunked"),
    ("dict", False, "WriteEnrichedParquet takes the records Enrich emits (EnrichedDocument), got dict"),
])
def test_a_writer_set_up_for_the_wrong_shape_fails_loudly(tmp_path, result, chunked, error):
    """Chunk lists never go into a whole-text column (nor the reverse), and a plain dict is
    not taken for an enriched record: the pipeline fails with one line saying so."""
    import apache_beam as beam

    from inference_enrich.inference.results import ChunkedEmbedding, EmbeddedChunk, SparseEmbedding
    from inference_enrich.transforms.documents import Document, EnrichedDocument
    from inference_enrich.transforms.write_parquet import WriteEnrichedParquet

    document = Document("d", "Wait.", {"id": "d", "text": "Wait."})
    element = {
        "chunks": EnrichedDocument(document, ChunkedEmbedding((EmbeddedChunk(0, 4, {"word": 1.0}),))),
        "whole": EnrichedDocument(document, SparseEmbedding({"word": 1.0}, False)),
        "dict": {"id": "d", "text": "Wait.", "embedding": {"word": 1.0}, "is_truncated": False},
    }[result]
    with pytest.raises(Exception, match=re.escape(error)):
        with beam.Pipeline(runner="FnApiRunner") as pipeline:
            _ = (pipeline | beam.Create([element])
                 | WriteEnrichedParquet(str(tmp_path / "out"), "text", "embedding", "sparse_embedding",
                                        chunked=chunked))


def test_the_examples_output_folders_are_git_ignored():
    """The README runs the YAML example and the Python example from the repository root:
    what they write must not show up as changes to commit."""
    for path in ("enrich-output-yaml/part-0.parquet", "enriched/part-0.parquet"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert done.returncode == 0, f"{path} is not git-ignored"


def test_the_example_config_names_every_transform_the_module_offers():
    """The example's providers block is the module's own, naming every transform it offers."""
    import apache_beam as beam

    from inference_enrich.transforms import beam_yaml as module

    assert providers_block() in EXAMPLE.read_text()
    assert all(issubclass(getattr(module, name), beam.PTransform) for name in module.TRANSFORMS)
