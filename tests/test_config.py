"""The job configuration: one declaration per setting, and everything derived from it (the
config-file reader, validation, one-line errors naming file, section and key, the flags of
``enrich run``), with secrets never shown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import inference_enrich.pipelines.config_file as config_file_module
from inference_enrich.pipelines.cli import build_parser
from inference_enrich.pipelines.cli_options import given_settings
from inference_enrich.pipelines.config import SETTINGS, JobConfig, sample_corpus_path
from inference_enrich.pipelines.config_file import FILE_KEYS, JobConfigError, load_job_config

SECRETS = ("sekrit-api-key", "hunter2", "sasl-s3cret")


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run_flags() -> set[str]:
    """The dests of the flags ``enrich run`` has for job settings (not --config/--quiet)."""
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    run = commands.choices["run"]
    return {a.dest for a in run._actions if a.option_strings} - {"help", "config", "quiet"}


def job_from_command_line(*argv: str) -> tuple[JobConfig, list[str]]:
    args, beam_args = build_parser().parse_known_args(["run", *argv])
    return load_job_config(args.config, given_settings(args)), beam_args


def test_every_setting_is_declared_once_and_has_a_flag_unless_secret():
    secret = {name for name, setting in SETTINGS.items() if setting.secret}
    assert secret == {"api_key", "password", "kafka_config"}
    assert run_flags() == set(JobConfig.model_fields) - secret
    assert sorted(FILE_KEYS.values()) == sorted(JobConfig.model_fields)  # one file key each
    assert all(JobConfig.model_fields[name].description for name in SETTINGS)  # the --help text


def test_the_documented_file_format_loads(tmp_path):
    example = config_file_module.__doc__.split("::\n", 1)[1].split("\nRelative local paths")[0]
    path = write(tmp_path, example)
    job = load_job_config(path, {})
    assert {(s, k) for s, body in yaml.safe_load(path.read_text()).items()
            for k in body} == set(FILE_KEYS)  # the example shows every key
    assert (job.source, job.kafka_topic, job.sink, job.index_path) == (
        "files", ["docs"], "parquet", str(tmp_path / "idx"))


def test_defaults():
    job = load_job_config(None, {})
    assert job.input == [sample_corpus_path()]
    assert (job.source, job.sink, job.inference_id, job.output) == (
        "files", "parquet", "my-elser-model", "enrich-output")
    assert (job.max_batch_tokens, job.max_batch_size, job.num_threads) == (8192, 64, None)
    assert (job.kafka_group, job.kafka_reader, job.verify_certs, job.streaming) == (
        "inference-enrich", "python", True, False)


@pytest.mark.parametrize("body, where, problem", [
    ("inference: {batch: 3}", "inference.batch", "unknown key (known: endpoints, inference_id"),
    ("sink: {url2: x}", "sink.url2", "unknown key"),
    ("source: {text_feild: body}", "source.text_feild", "unknown key (did you mean inference.text_field?) (known: "),
    ("inference: {text_feild: body}", "inference.text_feild", "unknown key (did you mean text_field?) (known: "),
    ("sink: {mdoe: append}", "sink.mdoe", "unknown key (did you mean mode?)"),
    ("sinkk: {}", "sinkk", "unknown section (did you mean sink?) (known: source, inference, sink)"),
    ("sinks: {}", "sinks", "unknown section (did you mean sink?) (known: source, inference, sink)"),
    ("inference: {max_batch_size: ten}", "inference.max_batch_size", "input should be a valid integer, got 'ten'"),
    ("inference: {max_batch_size: true}", "inference.max_batch_size", "input should be a valid integer, got True"),
    ("inference: {max_batch_size: 0}", "inference.max_batch_size", "greater than or equal to 1, got 0"),
    ("source: {input: []}", "source.input", "at least 1 item"),
    ("source: {input: [a, 3]}", "source.input.1", "input should be a valid string, got 3"),
    ("source: {format: xml}", "source.format", "input should be 'jsonl', 'json', 'csv', 'parquet' or 'text'"),
    ("source: {type: kafka, kafka_topic: t}", "source.kafka_bootstrap", "required by the kafka source"),
    ("sink: {type: embedded}", "sink.path", "required by the embedded sink"),
    ("source: {type: kafka, kafka_bootstrap: b, kafka_topic: t, streaming: true}\nsink: {mode: overwrite}",
     "sink.mode", "a streaming run adds to its output"),
    ("sink: {verify_certs: 'no'}", "sink.verify_certs", "input should be a valid boolean"),
    ("sink: 3", "sink", "expected a mapping"),
])
def test_a_mistake_names_file_section_and_key_on_one_line(tmp_path, body, where, problem):
    path = write(tmp_path, body)
    with pytest.raises(JobConfigError) as error:
        load_job_config(path, {})
    message = str(error.value)
    assert message.startswith(f"{path}: {where}: "), message
    assert problem in message and "\n" not in message


def test_every_mistake_is_reported_one_per_line(tmp_path):
    path = write(tmp_path, "inference: {max_batch_size: 0, max_batch_tokens: 0}\n")
    with pytest.raises(JobConfigError) as error:
        load_job_config(path, {})
    assert [line.split(": ")[1] for line in str(error.value).splitlines()] == [
        "inference.max_batch_tokens", "inference.max_batch_size"]


def test_a_bad_flag_is_named_as_the_flag(tmp_path):
    path = write(tmp_path, "inference: {max_batch_size: 8}\n")
    with pytest.raises(JobConfigError, match=r"^command line: --max-batch-size: input should be greater"):
        job_from_command_line("--config", str(path), "--max-batch-size", "0")
    with pytest.raises(JobConfigError, match=r"^command line: --index-path: required by the embedded sink"):
        job_from_command_line("--sink", "embedded")


def test_flags_win_over_the_file_and_beam_options_pass_through(tmp_path):
    path = write(tmp_path, """\
        source: {input: a.jsonl}
        inference: {text_field: body, max_batch_size: 8}
        sink: {output: from-file, verify_certs: false}
        """)
    job, beam_args = job_from_command_line(
        "--config", str(path), "--output", "/tmp/from-flag", "--input", "x.jsonl", "--input", "y.jsonl",
        "--max_batch_size", "16", "--verify-certs", "--runner=DirectRunner", "--direct_num_workers=2")
    assert job.output == "/tmp/from-flag" and job.input == ["x.jsonl", "y.jsonl"]
    assert (job.max_batch_size, job.verify_certs) == (16, True)
    assert job.text_field == "body"  # not given as a flag: the file's value stands
    assert beam_args == ["--runner=DirectRunner", "--direct_num_workers=2"]
    job, _ = job_from_command_line("--config", str(path))
    assert (job.output, job.max_batch_size, job.verify_certs) == (str(tmp_path / "from-file"), 8, False)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = write(tmp_path, """\
        source: {input: [docs/a.jsonl, /abs/b.jsonl, "memory://bucket/c.jsonl"]}
        inference: {endpoints: ../endpoints.yaml}
        sink: {type: embedded, path: idx, output: out, ca_certs: ca.pem, url: "http://h:9200"}
        """, name="jobs/job.yaml")
    job = load_job_config(path, {})
    base = tmp_path / "jobs"
    assert job.input == [str(base / "docs/a.jsonl"), "/abs/b.jsonl", "memory://bucket/c.jsonl"]
    assert job.endpoints == str(tmp_path / "endpoints.yaml")
    assert (job.index_path, job.output, job.ca_certs) == (str(base / "idx"), str(base / "out"), str(base / "ca.pem"))
    assert job.es_url == "http://h:9200"
    # flags are relative to where the command runs, as any command-line path
    job, _ = job_from_command_line("--config", str(path), "--output", "rel-out")
    assert job.output == "rel-out"


def test_index_is_an_alias_of_the_embedded_sink(tmp_path):
    path = write(tmp_path, "sink: {type: index, path: idx}\n")
    assert load_job_config(path, {}).sink == "embedded"
    job, _ = job_from_command_line("--sink", "index", "--index-path", "idx")
    assert job.sink == "embedded" and job.index_settings().kind == "embedded"


def test_one_topic_or_input_may_be_a_plain_string(tmp_path):
    path = write(tmp_path, "source: {type: kafka, kafka_bootstrap: 'b:9092', kafka_topic: docs, input: a.jsonl}\n")
    job = load_job_config(path, {})
    assert job.kafka_topic == ["docs"] and job.input == [str(tmp_path / "a.jsonl")]


SECRET_JOB = {
    "source": {"input": "docs.jsonl",
               "kafka_config": {"sasl.username": "me", "sasl.password": "sasl-s3cret",
                                "session.timeout.ms": 45000}},
    "sink": {"url": "https://elastic:hunter2@es.example:9243", "api_key": "sekrit-api-key",
             "username": "elastic", "password": "hunter2", "output": "out"},
}


def write_secret_job(tmp_path: Path, **changes: dict) -> Path:
    document = {section: {**SECRET_JOB.get(section, {}), **changes.get(section, {})}
                for section in ("source", "inference", "sink")}
    return write(tmp_path, yaml.safe_dump(document))


def test_secrets_are_held_masked_and_revealed_only_to_clients(tmp_path):
    job = load_job_config(write_secret_job(tmp_path), {})
    shown = [repr(job), str(job), repr(job.index_settings()), job.index_settings().describe(),
             repr(job.kafka_settings()), job.model_dump_json(), str(job.model_dump())]
    for text in shown:
        assert not any(secret in text for secret in SECRETS), text
    assert "me" in repr(job.kafka_settings()) and "45000" in repr(job)
    # what the clients receive is the real value
    assert job.kafka_settings().consumer_config()["sasl.password"] == "sasl-s3cret"
    assert job.index_settings().password.get_secret_value() == "hunter2"
    assert job.index_settings().api_key.get_secret_value() == "sekrit-api-key"


@pytest.mark.parametrize("changes", [
    {"inference": {"max_batch_size": 0}},  # a mistake elsewhere in a file holding secrets
    {"sink": {"password": 12345}},  # the secret itself has the wrong type
    {"sink": {"api_key": ["sekrit-api-key"]}},
    {"source": {"kafka_config": "sasl.password=sasl-s3cret"}},
    {"sink": {"url": ["https://elastic:hunter2@es.example:9243"]}},
])
def test_errors_never_show_secrets(tmp_path, changes):
    with pytest.raises(JobConfigError) as error:
        load_job_config(write_secret_job(tmp_path, **changes), {})
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'job.yaml'}: ")
    assert not any(secret in message for secret in (*SECRETS, "12345")), message


def test_yaml_syntax_errors_do_not_quote_the_file(tmp_path):
    """PyYAML's message quotes the offending line, which may hold a secret."""
    path = write(tmp_path, "sink:\n  url: https://elastic:hunter2@es: x\n")
    with pytest.raises(JobConfigError) as error:
        load_job_config(path, {})
    assert str(error.value) == (f"{path}: not valid YAML: mapping values are not allowed here "
                                "(line 2, column 34)")


def test_enrich_run_never_prints_secrets(tmp_path):
    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "Whales sing at sea."}\n')
    path = write_secret_job(tmp_path)
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", "--config", str(path)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "records out              1" in done.stdout
    failed = subprocess.run([*cli, "--max-batch-size", "0", "--sink", "elasticsearch"],
                            capture_output=True, text=True, timeout=600)
    assert failed.returncode == 2 and "--max-batch-size" in failed.stderr
    for output in (done.stdout, done.stderr, failed.stdout, failed.stderr):
        assert not any(secret in output for secret in SECRETS)


def test_the_masking_rule():
    from inference_enrich.inference.secrets import masked, redact_url

    assert masked("kafka_config", {"sasl.password": "x", "ssl.key.location": "k", "acks": "all"}) == {
        "sasl.password": "***", "ssl.key.location": "***", "acks": "all"}
    assert masked("input", ["s3://key:s3cret@bucket/a", "b"]) == ["s3://key:***@bucket/a", "b"]
    assert redact_url("https://u:p@h:9243/x") == "https://u:***@h:9243/x"
    assert redact_url("http://u:p@h:notaport") == "***"  # unparseable: nothing of it shown
