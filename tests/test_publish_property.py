"""Property: whatever files share the output directory and whatever sequence of overwrite
and append runs publishes into it, publishing removes only files enrich published, and
``_SUCCESS`` lists exactly the enrich files present. Real files; each run's staging and
manifest are laid out as ``CommitManifest`` leaves them (no Beam: publishing comes after it)."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from inference_enrich.transforms.publishing.output_dir import SUCCESS
from inference_enrich.transforms.publishing.publish import new_run_id, publish_output
from inference_enrich.transforms.bundle_files import MANIFEST, RunFiles
from inference_enrich.transforms.dead_letters import DEAD_LETTER_DIR

FOREIGN_NAME = st.builds(lambda stem, ext: f"{stem}{ext}",
                         st.sampled_from(["part-", "part-00000-", "report", "_meta", "part-x"])
                         .flatmap(lambda prefix: st.text("abcdef0123456789-", max_size=36).map(prefix.__add__)),
                         st.sampled_from(["", ".parquet", ".jsonl", ".docx", ".snappy.parquet"]))
FOREIGN = st.dictionaries(st.tuples(st.sampled_from(["", f"{DEAD_LETTER_DIR}/"]), FOREIGN_NAME)
                          .map("".join).filter(lambda name: name not in ("_SUCCESS",)),
                          st.binary(max_size=8), max_size=6)
RUNS = st.lists(st.tuples(st.sampled_from([True, False]), st.integers(0, 3), st.integers(0, 2)),
                min_size=1, max_size=4)


def stage_run(output: Path, parts: int, letters: int) -> RunFiles:
    """A committed run as CommitManifest leaves it: staged files and their manifest."""
    run_files = RunFiles(str(output), new_run_id())
    staging = Path(run_files.staging)
    names = [f"part-{uuid.uuid4().hex}.parquet" for _ in range(parts)]
    names += [f"{DEAD_LETTER_DIR}/part-{uuid.uuid4().hex}.jsonl" for _ in range(letters)]
    for name in names:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(name.encode())
    staging.mkdir(parents=True, exist_ok=True)
    (staging / MANIFEST).write_text(json.dumps({"run_id": run_files.run_id, "files": sorted(names)}))
    return run_files


@settings(max_examples=60, deadline=None)
@given(foreign=FOREIGN, runs=RUNS)
def test_publishing_removes_only_files_enrich_published(foreign, runs):
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "out"
        for name, data in foreign.items():
            (output / name).parent.mkdir(parents=True, exist_ok=True)
            (output / name).write_bytes(data)
        expected: set[str] = set()
        for replace, parts, letters in runs:
            run_files = stage_run(output, parts, letters)
            names = set(json.loads((Path(run_files.staging) / MANIFEST).read_text())["files"])
            assert publish_output(run_files, replace=replace) == len(names)
            expected = names if replace else expected | names
            for name, data in foreign.items():
                assert (output / name).read_bytes() == data, f"{name} was touched"
            published = set(json.loads((output / SUCCESS).read_text())["published"])
            present = {str(p.relative_to(output)) for p in output.rglob("*") if p.is_file()}
            assert published == expected == present - set(foreign) - {SUCCESS}
            assert not Path(run_files.staging).exists()
