#!/usr/bin/env bash
# Type-check the whole package with mypy. The repository root *is* the package
# inference_enrich (pyproject maps it to "."), so mypy cannot resolve `inference_enrich.*`
# from the checkout itself: check it through a link named inference_enrich in a temp folder.
# Usage: .ci/typecheck.sh [python]  (the interpreter whose mypy and packages to use)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
if [[ "$python" == */* ]]; then  # a path: made absolute, since mypy runs from another folder
    python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
fi
link_dir="$(mktemp -d)"
trap 'rm -rf "$link_dir"' EXIT
ln -s "$repo" "$link_dir/inference_enrich"
cd "$link_dir"
"$python" -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" -p inference_enrich
