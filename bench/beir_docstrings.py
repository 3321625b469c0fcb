"""Build a known-item retrieval task in BEIR layout from CPython's standard-library docstrings.

Each document is one function's, class's or module's docstring, titled with its qualified
name (``threading.enumerate``). A docstring with a summary paragraph (4+ words, found in no
other docstring) and a body (15+ words) can be a known item: its document is the body alone,
its query the summary ("Return a list of all Thread objects currently alive."), its one
relevant document the body it came from: the "package synopsis -> description" task of issue
#24, on text every CPython install ships (read with ``ast``; nothing is imported; PSF
licence). Every other docstring of 8+ words is a distractor, whole. Documents are drawn by a
hash of their name (deterministic, every module mixed); one known item in ``--query-every``
gets a query.

    .venv/bin/python bench/beir_docstrings.py OUT_DIR [--docs 5000] [--query-every 5]
    .venv/bin/enrich eval OUT_DIR --methods bm25,sparse,dense,hybrid
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sysconfig
from pathlib import Path
from typing import Iterator

MIN_SUMMARY_WORDS, MIN_BODY_WORDS, MIN_DOCUMENT_WORDS = 4, 15, 8
SKIPPED_DIRECTORIES = {"test", "tests", "idle_test", "site-packages", "lib2to3", "__pycache__"}


def docstrings(stdlib: Path) -> Iterator[tuple[str, str, str]]:
    """(qualified name, summary paragraph, the rest) of every docstring of 8+ words, in file
    order."""
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if SKIPPED_DIRECTORIES & set(relative.parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        yield from _walk(tree, module)


def _walk(node: ast.AST, name: str) -> Iterator[tuple[str, str, str]]:
    text = ast.get_docstring(node, clean=True) if isinstance(
        node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if text:
        summary, _, body = text.strip().partition("\n\n")
        if len(text.split()) >= MIN_DOCUMENT_WORDS:
            yield name, " ".join(summary.split()), body.strip()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(child, f"{name}.{child.name}")


def build(out: Path, docs: int, query_every: int) -> tuple[int, int]:
    """Write the BEIR directory; returns (documents, queries)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = {name: (summary, body) for name, summary, body in docstrings(stdlib)}
    summary_count: dict[str, int] = {}
    for summary, _ in found.values():
        summary_count[summary] = summary_count.get(summary, 0) + 1
    chosen = sorted(found, key=lambda name: hashlib.sha256(name.encode()).hexdigest())[:docs]
    known_items = 0
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as corpus, \
            (out / "queries.jsonl").open("w", encoding="utf-8") as queries, \
            (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for n, name in enumerate(chosen):
            summary, body = found[name]
            known_item = (summary_count[summary] == 1 and len(summary.split()) >= MIN_SUMMARY_WORDS
                          and len(body.split()) >= MIN_BODY_WORDS)
            text = body if known_item else f"{summary}\n\n{body}".strip()
            doc_id = f"d{n}"
            corpus.write(json.dumps({"_id": doc_id, "title": name, "text": re.sub(r"\s+", " ", text)}) + "\n")
            if known_item:
                if known_items % query_every == 0:
                    queries.write(json.dumps({"_id": f"q{n}", "text": summary}) + "\n")
                    qrels.write(f"q{n}\t{doc_id}\t1\n")
                known_items += 1
    return len(chosen), (known_items + query_every - 1) // query_every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--query-every", type=int, default=5)
    args = parser.parse_args()
    documents, queries = build(args.out, args.docs, args.query_every)
    print(f"{args.out}: {documents} documents, {queries} queries")


if __name__ == "__main__":
    main()
