"""Build the benchmark corpus: real English prose of varied length, generated offline.

The text is the prose of the Python documentation that ships with every CPython install
(``pydoc_data.topics``) and of the standard library's docstrings (read with ``ast``, nothing
is imported), under the PSF licence. Paragraphs that look like code are dropped; the rest are
grouped, in order, into documents whose lengths are drawn from 10 to 400 words. The corpus is
rebuilt on each run, deterministically (a fixed seed), so it is not committed.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import sysconfig
from pathlib import Path
from typing import Iterator

MIN_WORDS, MAX_WORDS = 10, 400
_WORD = re.compile(r"^[A-Za-z][A-Za-z'\-,.;:()]*$")


def _prose_paragraphs(text: str) -> Iterator[str]:
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines()]
        if any(line.startswith((">>>", "...", "$", "#", "|", "+-", "==")) for line in lines):
            continue
        words = " ".join(lines).split()
        if len(words) >= 5 and sum(bool(_WORD.match(w)) for w in words) >= 0.8 * len(words):
            yield " ".join(words)


def _docstrings(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts or "idlelib" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def paragraphs() -> Iterator[str]:
    import pydoc_data.topics

    for topic in sorted(pydoc_data.topics.topics):
        yield from _prose_paragraphs(pydoc_data.topics.topics[topic])
    for doc in _docstrings(Path(sysconfig.get_paths()["stdlib"])):
        yield from _prose_paragraphs(doc)


def build_corpus(count: int, seed: int = 7) -> list[dict]:
    """``count`` documents; the prose is reused in order (cycled) if ``count`` needs more."""
    rng = random.Random(seed)
    words = [w for paragraph in paragraphs() for w in paragraph.split()]
    documents, position = [], 0
    for number in range(count):
        # Log-uniform lengths: many short documents, a long tail up to MAX_WORDS.
        length = int(round(MIN_WORDS * (MAX_WORDS / MIN_WORDS) ** rng.random()))
        if position + length > len(words):
            position = rng.randrange(0, 1000)
        documents.append({"id": f"bench-{number:06d}", "text": " ".join(words[position : position + length])})
        position += length
    return documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    with args.output.open("w", encoding="utf-8") as stream:
        for document in build_corpus(args.count):
            stream.write(json.dumps(document) + "\n")


if __name__ == "__main__":
    main()
