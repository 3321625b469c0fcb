"""The ``enrich`` command starts without the heavy libraries: torch, transformers and Beam are
imported only by the code paths that use them (structural checks, never timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "apache_beam")


def imported_modules(*argv: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level packages a fresh interpreter imported running ``argv`` (``-X importtime``
    lists every import on stderr), and the finished process."""
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                          timeout=600)
    modules = {line.split("|")[-1].strip().split(".")[0]
               for line in done.stderr.splitlines() if line.startswith("import time:")}
    return modules, done


@pytest.mark.parametrize("command", [["--help"], ["endpoints"], ["endpoints", "--json"], ["infer", "--help"],
                                     ["run", "--help"], ["search", "--help"], ["serve", "--help"]],
                         ids=" ".join)
def test_cli_commands_that_need_no_model_import_no_heavy_library(command):
    modules, done = imported_modules("-m", "inference_enrich.pipelines.cli", *command)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("task_type, inference_id", [("sparse_embedding", "my-elser-model"),
                                                     ("text_embedding", "my-minilm")])
def test_infer_with_a_packaged_model_imports_no_transformers(task_type, inference_id):
    # The packaged BERT models run on our own forward pass (inference/bert/): importing
    # transformers' modelling code was most of the first answer's start-up.
    modules, done = imported_modules("-m", "inference_enrich.pipelines.cli", "infer", task_type, inference_id, "hi")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)[task_type][0]["embedding"]
    assert "torch" in modules
    assert not modules & {"transformers", "apache_beam", "sentence_transformers"}


@pytest.mark.parametrize("package", ["inference_enrich", "inference_enrich.inference", "inference_enrich.indexes",
                                     "inference_enrich.pipelines.config", "inference_enrich.server.cli"])
def test_packages_import_no_heavy_library(package):
    modules, done = imported_modules("-c", f"import {package}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_public_api_names_still_resolve():
    """The lazy exports load their module on first use, heavy or not."""
    done = subprocess.run([sys.executable, "-c", "from inference_enrich import Enrich, load_endpoints, IndexSettings;"
                           "from inference_enrich.inference import load_runtime, infer_texts, ModelRuntime;"
                           "print(Enrich.__name__, load_runtime.__name__)"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Enrich", "load_runtime"]


def test_run_says_what_it_is_about_to_do_before_importing_beam(tmp_path):
    """The first line reaches the user before the seconds of torch and Beam imports."""
    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "Whales sing."}\n')
    modules, done = imported_modules("-m", "inference_enrich.pipelines.cli", "run", "--input",
                                     str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("enrich:"))
    assert "1 input(s) -> parquet with my-elser-model" in lines[first]
    imported_before = {line.split("|")[-1].strip().split(".")[0] for line in lines[:first]}
    assert not imported_before & set(HEAVY), sorted(imported_before & set(HEAVY))
    assert {"torch", "apache_beam"} <= modules  # the run itself needed them (transformers: not for
    # the packaged models, which run on our own BERT forward pass)


def test_static_imports_name_what_the_lazy_exports_load():
    """``if TYPE_CHECKING:`` in ``__init__.py`` shows static tools the same names, from the
    same modules, that ``__getattr__`` imports at run time."""
    import ast
    from pathlib import Path

    import inference_enrich

    tree = ast.parse(Path(inference_enrich.__file__).read_text())
    (checked,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    static = {alias.name: imported.module for imported in checked.body for alias in imported.names}
    assert static == inference_enrich._EXPORTS


def test_a_job_on_local_files_imports_no_http_client(tmp_path):
    # aiohttp is what http:// inputs (through fsspec) and remote endpoints talk through; a job
    # reading local files with a packaged model needs neither, and importing it cost ~0.1 s.
    documents = tmp_path / "docs.jsonl"
    documents.write_text("".join(json.dumps({"id": str(n), "text": f"document number {n}"}) + "\n"
                                 for n in range(3)))
    modules, done = imported_modules("-m", "inference_enrich.pipelines.cli", "run", "--input", str(documents),
                                     "--output", str(tmp_path / "out"), "--inference-id", "my-minilm", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "out").glob("part-*.parquet"))
    assert "aiohttp" not in modules
