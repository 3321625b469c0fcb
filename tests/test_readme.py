"""The README's set-up commands are the ones CI runs, and its examples are true."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEAM_YAML_SUFFIX = ".beam.yaml"
"""configs/*.beam.yaml are Beam YAML pipelines (apache_beam.yaml.main), not job configs."""


def test_ci_runs_the_readme_test_command():
    # CI's last three lines: the README's install, the type check, the README's tests.
    install, type_check, tests = (REPO / ".ci" / "run").read_text().strip().splitlines()[-3:]
    readme_commands = [line.strip() for line in (REPO / "README.md").read_text().splitlines()
                       if line.startswith("    python3 -m venv")]
    assert len(readme_commands) == 2
    assert readme_commands[1] == f"{install} && {tests}"
    assert type_check == ".ci/typecheck.sh .venv/bin/python"
    assert readme_commands[0].endswith("enrich run")


def test_example_config_paths_exist():
    import yaml

    config = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    assert (REPO / "configs" / config["source"]["input"]).resolve().is_file()
    assert (REPO / "configs" / config["inference"]["endpoints"]).is_file()


def test_every_example_job_config_is_valid():
    from inference_enrich.pipelines.config_file import load_job_config

    jobs = {path.name: load_job_config(path, {}) for path in sorted((REPO / "configs").glob("*.yaml"))
            if path.name != "endpoints.yaml" and not path.name.endswith(BEAM_YAML_SUFFIX)}
    assert set(jobs) == {"local.yaml", "elasticsearch.yaml", "kafka.yaml"}
    assert (jobs["elasticsearch.yaml"].sink, jobs["elasticsearch.yaml"].index) == ("elasticsearch", "sample-corpus")
    assert (jobs["kafka.yaml"].source, jobs["kafka.yaml"].kafka_topic) == ("kafka", ["documents"])
    assert jobs["kafka.yaml"].kafka_config == {"session.timeout.ms": 45000}


def test_beam_yaml_pipelines_are_valid_beam_yaml_and_not_job_configs():
    import pytest
    import yaml
    from apache_beam.yaml import yaml_transform

    from inference_enrich.pipelines.config_file import JobConfigError, load_job_config

    pipelines = sorted((REPO / "configs").glob(f"*{BEAM_YAML_SUFFIX}"))
    assert [path.name for path in pipelines] == ["enrich.beam.yaml"]
    for path in pipelines:
        expanded = yaml_transform.expand_jinja(path.read_text(), {})
        spec = yaml.load(expanded, Loader=yaml_transform.SafeLineLoader)
        yaml_transform.validate_against_schema(spec, "generic")  # Beam's own pipeline schema
        assert {"pipeline", "providers"} <= set(spec)
        with pytest.raises(JobConfigError, match="unknown section"):
            load_job_config(path, {})
