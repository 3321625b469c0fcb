"""A job that cannot do its work fails (#21, item 2): a broken model or a wrong text field
stops the run with exit status 1, publishes nothing and leaves the previous output as it was.
Real models, real FnApiRunner runs; the broken model is a real one whose every forward pass
raises (a tiny BERT whose vocabulary is smaller than its tokenizer's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from inference_enrich.inference.models import resolve_model_path
from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.enrich import JobFailed
from inference_enrich.transforms.publishing.output_dir import SUCCESS

from pipeline_helpers import read_output, run, write_lines

ENRICH = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def enrich(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ENRICH, *args, "--quiet"], capture_output=True, text=True, timeout=600)


def records(path: Path, count: int, field: str = "text", prefix: str = "doc") -> Path:
    return write_lines(path, [json.dumps({"id": f"{prefix}-{i}", field: f"Record {i}: the whale and the ship."}).encode()
                              for i in range(count)])


@pytest.fixture(scope="module")
def broken_endpoints(tmp_path_factory) -> Path:
    """An endpoints file whose 'broken' endpoint loads, then raises on every forward pass:
    its model's vocabulary (100 ids) is smaller than its tokenizer's, so every embedding
    lookup is out of range (IndexError), as with a model saved with the wrong tokenizer."""
    from transformers import BertConfig, BertForMaskedLM

    base = tmp_path_factory.mktemp("broken")
    model_dir = base / "model"
    model_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(resolve_model_path("splade-tiny")) / name, model_dir / name)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=512)
    BertForMaskedLM(config).save_pretrained(model_dir)
    path = base / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"broken": {
        "task_type": "sparse_embedding", "service": "transformers",
        "service_settings": {"model_id": str(model_dir)}}}}))
    return path


def earlier_output(tmp_path: Path) -> tuple[Path, object, str]:
    output = tmp_path / "out"
    run(JobConfig(input=[str(records(tmp_path / "good.jsonl", 3, prefix="good"))], output=str(output)))
    return output, ds.dataset(output).to_table().sort_by("id"), (output / SUCCESS).read_text()


def assert_untouched(output: Path, table, success: str) -> None:
    assert ds.dataset(output).to_table().sort_by("id").equals(table)
    assert (output / SUCCESS).read_text() == success
    assert not list(output.glob(".staging-*"))


def test_the_model_is_broken_every_forward_pass_raises(tmp_path, broken_endpoints):
    """Old code: every record retried one by one, all dead-lettered, exit 0, _SUCCESS written
    and the previous output replaced by an empty one."""
    output, table, success = earlier_output(tmp_path)
    job = JobConfig(input=[str(records(tmp_path / "in.jsonl", 40))], output=str(output),
                    endpoints=str(broken_endpoints), inference_id="broken", max_batch_size=4,
                    max_dead_letter_ratio=1.0)  # the systemic-failure check alone must stop it
    # The packaged BERT runs on our forward pass: its embedding lookup names the index.
    with pytest.raises(JobFailed, match=r"IndexError: index \d+ is out of bounds for dimension 0") as failed:
        run(job)
    assert "every document of the first" in str(failed.value)
    assert_untouched(output, table, success)


def test_the_model_is_broken_on_a_small_input_the_dead_letter_ceiling_stops_it(tmp_path, broken_endpoints):
    """Two records, one batch: too few batches to call the failure systemic; the share of
    dead letters (100%) is over the default ceiling, exit 1, and the most common reason is named."""
    output, table, success = earlier_output(tmp_path)
    done = enrich("run", "--input", str(records(tmp_path / "in.jsonl", 2)), "--output", str(output),
                  "--endpoints", str(broken_endpoints), "--inference-id", "broken")
    assert done.returncode == 1, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("enrich: error:")]
    assert "2 of 2 records (100%) were dead-lettered, more than --max-dead-letter-ratio 0.5" in line
    assert "most common: inference: IndexError: index N is out of bounds for dimension N with size N (2)" in line
    assert_untouched(output, table, success)


def test_the_text_field_is_wrong(tmp_path):
    """Old code: every record dead-lettered, exit 0, a summary pointing at Parquet files that
    do not exist. Now: exit 1, the reason, the fields the records have and a suggestion."""
    output, table, success = earlier_output(tmp_path)
    done = enrich("run", "--input", str(records(tmp_path / "in.jsonl", 5, field="body")),
                  "--output", str(output))
    assert done.returncode == 1, done.stderr
    assert "validate: missing text field 'text' (5)" in done.stderr
    assert "the records have fields: body, id" in done.stderr
    assert "did you mean --text-field body?" in done.stderr
    assert_untouched(output, table, success)


def test_a_few_bad_records_pass_and_the_summary_names_the_most_common_reason(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [
        *(json.dumps({"id": f"ok-{i}", "text": f"Record {i} sails."}).encode() for i in range(9)),
        b'{"id": "no-text", "title": "x"}'])
    output = tmp_path / "out"
    done = enrich("run", "--input", str(source), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "most common: validate: missing text field 'text' (1)" in done.stdout
    assert len(read_output(str(output))) == 9

    done = enrich("run", "--input", str(source), "--output", str(output), "--max-dead-letter-ratio", "0.05")
    assert done.returncode == 1
    assert "1 of 10 records (10%) were dead-lettered, more than --max-dead-letter-ratio 0.05" in done.stderr


def test_the_dead_letter_ceiling_holds_when_the_pipeline_publishes(tmp_path):
    output, table, success = earlier_output(tmp_path)
    job = JobConfig(input=[str(records(tmp_path / "in.jsonl", 4, field="body"))], output=str(output),
                    publish="pipeline")
    with pytest.raises(JobFailed, match=r"4 of 4 records \(100%\) were dead-lettered.*did you mean --text-field body\?"):
        run(job)
    assert ds.dataset(output).to_table().sort_by("id").equals(table)
    assert (output / SUCCESS).read_text() == success


@pytest.mark.parametrize("batches, systemic", [
    ([[IndexError("x")] * 4] * 3, True),                       # the broken model
    ([[IndexError("x")] * 4] * 2, False),                      # too few batches to tell
    ([[IndexError("x")] * 4, ["ok"], [IndexError("x")] * 4, [IndexError("x")] * 4], False),  # one worked
    ([[IndexError("x")] * 4, [ValueError("y")] * 4, [IndexError("x")] * 4], False),  # errors differ
    ([[IndexError("x"), "ok"]] * 5, False),                    # bad documents, not a bad model
])
def test_only_a_uniform_failure_from_the_start_is_systemic(batches, systemic):
    from inference_enrich.transforms.failure_guard import SystemicFailureGuard, SystemicInferenceError

    guard = SystemicFailureGuard()
    raised = False
    try:
        for results in batches:
            guard.observe(results)
    except SystemicInferenceError as error:
        raised = "IndexError: x" in str(error)
    assert raised == systemic


def test_a_failed_run_into_an_index_says_its_documents_stay_there(tmp_path):
    """An index sink writes documents during the run, so a run failed by the dead-letter
    ceiling must not claim that nothing was published: it names what stays in the index."""
    source = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "ok", "text": "The whale sails."}).encode(),
        b'{"id": "no-text-1", "title": "x"}', b'{"id": "no-text-2", "title": "y"}'])
    index = tmp_path / "idx"
    job = JobConfig(input=[str(source)], output=str(tmp_path / "out"), sink="embedded", index_path=str(index))
    with pytest.raises(JobFailed, match=r"its dead letters were not published \(the documents already "
                                        r"written to embedded index .*idx stay there"):
        run(job)
