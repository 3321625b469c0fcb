"""Build-once packaging check: the wheel holds only the `inference_enrich` package (no top-level
`pipelines`, `transforms`, ... in site-packages), with its configs and sample data, and no
tests or benchmarks.

    python .ci/check_wheel.py dist/inference_enrich-*.whl
"""

from __future__ import annotations

import sys
import zipfile

REQUIRED = (
    "inference_enrich/__init__.py",
    "inference_enrich/pipelines/cli.py",
    "inference_enrich/transforms/inference_dofn.py",
    "inference_enrich/transforms/enrich.py",
    "inference_enrich/transforms/model_handler.py",
    "inference_enrich/transforms/beam_yaml.py",
    "inference_enrich/transforms/kafka/reader.py",
    "inference_enrich/inference/endpoints.py",
    "inference_enrich/inference/chunking/chunkers.py",
    "inference_enrich/inference/remote/runtime.py",
    "inference_enrich/indexes/cluster.py",
    "inference_enrich/server/app.py",
    "inference_enrich/configs/endpoints.yaml",
    "inference_enrich/configs/enrich.beam.yaml",
    "inference_enrich/sample_data/sample_corpus.jsonl",
)


def main(wheel: str) -> int:
    names = zipfile.ZipFile(wheel).namelist()
    stray = [n for n in names if not n.startswith(("inference_enrich/", "inference_enrich-"))]
    stray += [n for n in names if n.startswith(("inference_enrich/tests/", "inference_enrich/bench/"))]
    missing = [n for n in REQUIRED if n not in names]
    for problem, items in (("outside the package", stray), ("missing", missing)):
        for item in items:
            print(f"{wheel}: {problem}: {item}", file=sys.stderr)
    if stray or missing:
        return 1
    print(f"{wheel}: {len(names)} files, all under inference_enrich/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
