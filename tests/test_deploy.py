"""The job translates for Dataflow (Beam's --dry_run, offline) and runs on a portable runner.

Dataflow and Flink cannot run here; what can be proven offline is proven: DataflowRunner
builds the complete job (every transform translated, SDFs, streaming) without submitting it,
and PortableRunner with an in-process job server (the path a Flink job server takes) gives
the same output as the in-process FnApiRunner.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from inference_enrich.pipelines.config import JobConfig
from inference_enrich.pipelines.dry_run import translate_job

from pipeline_helpers import read_dead_letters, read_output, run, sparse, write_lines

DATAFLOW = ["--runner=DataflowRunner", "--dry_run=True", "--project=demo-project",
            "--region=us-central1", "--temp_location=gs://demo-bucket/tmp"]
SINKS = {
    "parquet": {"output": "gs://demo-bucket/out"},
    "elasticsearch": {"output": "gs://demo-bucket/out", "sink": "elasticsearch",
                      "es_url": "https://es.example:9243", "index": "docs"},
}


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
def test_file_source_translates_for_dataflow(sink, streaming):
    args = DATAFLOW + (["--streaming"] if streaming else [])
    translated = translate_job(JobConfig(**SINKS[sink]), PipelineOptions(args))
    assert translated.job_type == ("JOB_TYPE_STREAMING" if streaming else "JOB_TYPE_BATCH")
    assert translated.transforms > 10
    assert any("beam_python3.11_sdk" in env for env in translated.environments)


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
def test_kafka_source_translates_for_dataflow(sink, streaming, kafka_bootstrap):
    from test_kafka import new_topic

    job = JobConfig(source="kafka", kafka_bootstrap=kafka_bootstrap, kafka_topic=[new_topic(kafka_bootstrap)],
                    streaming=streaming, **SINKS[sink])
    args = DATAFLOW + (["--streaming"] if streaming else [])
    translated = translate_job(job, PipelineOptions(args))
    assert translated.job_type == ("JOB_TYPE_STREAMING" if streaming else "JOB_TYPE_BATCH")
    assert translated.splittable_dofns >= 1  # the per-partition Kafka reader


def test_publishing_in_the_pipeline_translates_for_dataflow(kafka_bootstrap):
    """The Flex Template's batch jobs publish (and commit Kafka offsets) as their last step."""
    from test_kafka import new_topic

    jobs = {"files": JobConfig(output="gs://demo-bucket/out"),
            "kafka": JobConfig(source="kafka", kafka_bootstrap=kafka_bootstrap,
                               kafka_topic=[new_topic(kafka_bootstrap)], output="gs://demo-bucket/out")}
    for source, job in jobs.items():
        launcher = translate_job(job, PipelineOptions(DATAFLOW))
        pipeline = translate_job(job.model_copy(update={"publish": "pipeline"}), PipelineOptions(DATAFLOW))
        assert pipeline.job_type == "JOB_TYPE_BATCH", source
        assert pipeline.transforms > launcher.transforms, source  # the PublishOutput step


def test_custom_worker_container_is_what_dataflow_would_run():
    image = "europe-docker.example/acme/inference-enrich:0.1.0"
    translated = translate_job(JobConfig(output="gs://b/out"),
                               PipelineOptions(DATAFLOW + [f"--sdk_container_image={image}"]))
    assert translated.environments == (f"beam:env:docker:v1 {image}",)


def test_cli_dry_run_prints_the_job_and_refuses_runners_that_would_run(tmp_path):
    cli = [sys.executable, "-m", "inference_enrich.pipelines.cli", "run"]
    done = subprocess.run([*cli, "--runner", "DataflowRunner", "--dry_run", "--project", "demo-project",
                           "--region", "us-central1", "--temp_location", "gs://demo-bucket/tmp",
                           "--output", "gs://demo-bucket/out"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "dry run: DataflowRunner would submit job" in done.stdout and "(JOB_TYPE_BATCH)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written
    done = subprocess.run([*cli, "--dry_run", "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--dry_run translates for DataflowRunner only" in done.stderr
    assert not (tmp_path / "out").exists()


OFFLINE_CLI = """
import os, runpy, socket, sys

def record_network(event, args):
    inet = event != "socket.connect" or args[0].family in (socket.AF_INET, socket.AF_INET6)
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname") and inet:
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(f"{event} {args[1:] if event == 'socket.connect' else args}\\n")

sys.addaudithook(record_network)
sys.argv = ["enrich", *sys.argv[1:]]
runpy.run_module("inference_enrich.pipelines.cli", run_name="__main__")
"""
"""``enrich`` with every attempt to reach the network (a connect or a name lookup) written to
$NETWORK_LOG by an audit hook: the process runs as it would, and the test sees what it tried."""


def enrich_offline(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "network.log"
    done = subprocess.run([sys.executable, "-c", OFFLINE_CLI, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**os.environ, "NETWORK_LOG": str(log)})
    return done, (log.read_text().splitlines() if log.exists() else [])


README_DRY_RUN = ["run", "--runner", "DataflowRunner", "--dry_run", "--project", "PROJECT", "--region", "REGION",
                  "--temp_location", "gs://BUCKET/tmp", "--output", "gs://BUCKET/enriched"]


def test_dry_run_as_the_readme_writes_it_names_the_placeholders_in_one_line_offline(tmp_path):
    done, network = enrich_offline(README_DRY_RUN, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr[-3000:]  # one line, no traceback
    assert done.stderr.startswith("enrich: error: replace the placeholders")
    for named in ("--project PROJECT", "--region REGION", "--temp_location gs://BUCKET/tmp",
                  "--output gs://BUCKET/enriched"):
        assert named in done.stderr
    assert network == []
    assert done.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == []


def test_dry_run_with_an_invalid_bucket_fails_offline_in_one_line(tmp_path):
    args = ["run", "--runner", "DataflowRunner", "--dry_run", "--project", "demo-project", "--region",
            "us-central1", "--temp_location", "gs://Demo_Bucket/tmp", "--output", "gs://demo-bucket/out"]
    done, network = enrich_offline(args, tmp_path)
    assert done.returncode == 2
    *started, error = done.stderr.strip().splitlines()
    assert [line.startswith("enrich: ") for line in started] == [True] * len(started) and len(started) <= 1, \
        done.stderr[-3000:]  # the start line, then one error line: no warning, no traceback
    assert error.startswith("enrich: error: a dry run needs --temp_location") and "gs://Demo_Bucket/tmp" in error
    assert network == []


def test_dry_run_reaches_no_network(tmp_path):
    args = ["run", "--runner", "DataflowRunner", "--dry_run", "--project", "demo-project", "--region",
            "us-central1", "--temp_location", "gs://demo-bucket/tmp", "--input", "gs://demo-bucket/docs/*.jsonl",
            "--output", "gs://demo-bucket/out"]
    done, network = enrich_offline(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: DataflowRunner would submit job" in done.stdout
    assert network == []


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
def test_cli_dry_run_with_a_kafka_source_commits_nothing(streaming, kafka_bootstrap, tmp_path):
    from test_kafka import committed_offsets, new_topic, produce

    from inference_enrich.transforms.kafka import KafkaSettings

    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, 0, 20)
    done = subprocess.run(
        [sys.executable, "-m", "inference_enrich.pipelines.cli", "run", *DATAFLOW,
         "--output", "gs://demo-bucket/out", "--source", "kafka", "--kafka-bootstrap", kafka_bootstrap,
         "--kafka-topic", topic, "--kafka-group", "dry-run", *(["--streaming"] if streaming else [])],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_type = "JOB_TYPE_STREAMING" if streaming else "JOB_TYPE_BATCH"
    assert "dry run: DataflowRunner would submit job" in done.stdout and f"({job_type})" in done.stdout
    assert "1 splittable DoFn stage(s)" in done.stdout
    assert list(tmp_path.iterdir()) == []
    offsets = committed_offsets(KafkaSettings(kafka_bootstrap, (topic,), "dry-run"))
    assert offsets and all(offset < 0 for offset in offsets.values())  # nothing committed


def test_portable_runner_output_equals_fnapi_runner(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [
        b'{"id": "a", "text": "The sky above the port was the color of television."}',
        b'{"id": "b", "text": "Call me Ishmael.", "year": 1851}',
        b'not json',
        b'{"id": "c", "text": ""}',
        b'{"id": "d", "text": "It was the best of times, it was the worst of times."}',
    ])
    outputs = {}
    for name, args in {"fnapi": ["--runner=FnApiRunner"],
                       "portable": ["--runner=PortableRunner", "--job_endpoint=embed",
                                    "--environment_type=LOOPBACK"]}.items():
        outputs[name] = str(tmp_path / name)
        summary = run(JobConfig(input=[str(source)], output=outputs[name]), args)
        assert (summary.records_written, summary.dead_letters) == (3, 2), name
    one, other = read_output(outputs["fnapi"]), read_output(outputs["portable"])
    assert set(one) == set(other) == {"a", "b", "d"}
    for key, row in one.items():
        assert (row["text"], row["passthrough"]) == (other[key]["text"], other[key]["passthrough"])
        assert sparse(other[key]) == pytest.approx(sparse(row), abs=1e-6)
    strip = lambda letters: sorted((l["line"], l["stage"], l["error"]) for l in letters)
    assert strip(read_dead_letters(outputs["fnapi"])) == strip(read_dead_letters(outputs["portable"]))


DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "dataflow"


def _load_flex_main():
    spec = importlib.util.spec_from_file_location("flex_main", DEPLOY / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILE_PARAMETERS = ("input", "output", "endpoints", "api_key_file", "password_file", "ca_certs")


def _sample_value(parameter: dict) -> str:
    if "regexes" in parameter:
        match = re.fullmatch(r"\^\((.+)\)\$", parameter["regexes"][0])
        return match.group(1).split("|")[0] if match else "8"
    return "gs://bucket/x" if parameter["name"] in FILE_PARAMETERS else "value"


def test_flex_template_parameters_are_enrich_run_flags():
    """metadata.json and the CLI cannot drift: every template parameter, passed the way the
    Flex launcher passes it (--name=value), is an `enrich run` flag, and every enumerated
    value the template allows is one the CLI accepts."""
    from inference_enrich.pipelines.cli import build_parser

    parser = build_parser()
    run_parser = parser._subparsers._group_actions[0].choices["run"]
    choices = {action.dest: action.choices for action in run_parser._actions if action.choices}
    flex_main = _load_flex_main()
    parameters = json.loads((DEPLOY / "metadata.json").read_text())["parameters"]
    assert {p["name"] for p in parameters} >= {"input", "output", "inference_id", "sink", "source",
                                               "username", "api_key_file", "password_file"}
    for parameter in parameters:
        argv = flex_main.run_arguments([f"--{parameter['name']}={_sample_value(parameter)}"])
        args, beam_args = parser.parse_known_args(argv)
        assert beam_args == [], parameter["name"]
        assert getattr(args, parameter["name"]) not in (None, False), parameter["name"]
        match = re.fullmatch(r"\^\((.+)\)\$", parameter.get("regexes", [""])[0])
        if match and parameter["name"] in choices:
            assert set(match.group(1).split("|")) <= set(choices[parameter["name"]]), parameter["name"]
    args, _ = parser.parse_known_args(flex_main.run_arguments(["--streaming=false"]))
    assert not getattr(args, "streaming", False)
    assert args.publish == "pipeline"  # the launcher stops once the job is submitted
    assert "publish" not in {p["name"] for p in parameters}


def test_flex_template_takes_no_secret_values():
    """Template parameters are visible in the Dataflow console and job metadata: a secret is
    passed as a file that holds it (api_key_file, password_file), never as a value."""
    from inference_enrich.pipelines.config import SETTINGS

    names = [p["name"] for p in json.loads((DEPLOY / "metadata.json").read_text())["parameters"]]
    assert [name for name in SETTINGS if SETTINGS[name].secret] == ["kafka_config", "api_key", "password"]
    assert not [name for name in names if SETTINGS[name].secret]
    assert {"api_key_file", "password_file"} <= set(names)


def test_credential_files_are_read_where_the_index_opens_and_stay_out_of_the_job(tmp_path):
    """The settings the workers get (pickled into the job) name the files, never the secrets;
    opening the index reads them (any fsspec URL)."""
    import pickle

    import fsspec

    from inference_enrich.pipelines.config_file import load_job_config

    with fsspec.open("memory://secrets/es-password", "wt") as stream:
        stream.write("s3cr3t-password\n")
    (tmp_path / "key").write_text("s3cr3t-api-key")
    job = load_job_config(None, {"sink": "elasticsearch", "api_key_file": str(tmp_path / "key"),
                                 "username": "elastic", "password_file": "memory://secrets/es-password"})
    settings = job.index_settings()
    shipped = pickle.dumps(settings)
    assert b"s3cr3t" not in shipped and b"s3cr3t" not in repr(settings).encode()
    opened = pickle.loads(shipped).with_environment()
    assert opened.api_key.get_secret_value() == "s3cr3t-api-key"
    assert opened.password.get_secret_value() == "s3cr3t-password"
    assert "s3cr3t" not in repr(opened)
    missing = load_job_config(None, {"sink": "elasticsearch", "api_key_file": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match=r"^api_key_file: cannot read .*nope: FileNotFoundError"):
        missing.index_settings().with_environment()


def test_dockerfile_pins_what_pyproject_pins():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = (DEPLOY.parents[1] / "pyproject.toml").read_text()
    beam = re.search(r'"apache-beam\[gcp\]==([\d.]+)"', pyproject).group(1)
    torch = re.search(r'"torch==([\d.]+)"', pyproject).group(1)
    assert f"apache/beam_python3.11_sdk:{beam}" in dockerfile
    assert f'"torch=={torch}"' in dockerfile
    assert "COPY deploy/dataflow/main.py /template/main.py" in dockerfile
