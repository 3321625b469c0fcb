"""Unknown flags are usage errors with a suggestion (#21, item 3), not Beam's "Unparseable
argument" warning followed by a run with the setting silently at its default."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inference_enrich.pipelines.cli import main

ENRICH = [sys.executable, "-m", "inference_enrich.pipelines.cli"]


def test_mistypes_a_flag(tmp_path):
    done = subprocess.run([*ENRICH, "run", "--text-feild", "body", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "unknown option --text-feild (did you mean --text-field?)" in done.stderr
    assert "Unparseable" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--max-batch-sise", "8"], "unknown option --max-batch-sise (did you mean --max-batch-size?)"),
    (["--direct_num_worker=2"], "unknown option --direct_num_worker (did you mean --direct_num_workers?)"),
    (["--no-such-thing"], "unknown option --no-such-thing"),
    (["stray"], "unexpected argument stray"),
])
def test_an_unknown_argument_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["eval", "beir", "--methds", "bm25"], "enrich eval: error: unrecognized arguments: --methds bm25 "
                                           "(did you mean --methods?)"),
    (["search", "q", "--top_kk", "3"], "enrich search: error: unrecognized arguments: --top_kk 3 "
                                       "(did you mean --top_k?)"),
    (["endpoints", "--nothing-like-it"], "enrich endpoints: error: unrecognized arguments: --nothing-like-it"),
])
def test_a_mistyped_flag_of_another_command_names_the_one_meant(argv, message, capsys):
    """Commands other than run: argparse's message, plus the closest of that command's flags."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_beam_pipeline_options_pass():
    from inference_enrich.pipelines.flag_check import unknown_beam_arguments

    assert unknown_beam_arguments(["--runner=FnApiRunner", "--direct_num_workers", "2",
                                   "--direct_running_mode=multi_processing", "--dry_run=True",
                                   "--streaming", "--project", "p", "--temp_location=gs://b/t"]) == []
