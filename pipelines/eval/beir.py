"""A BEIR directory (corpus, queries, judgements) read whole and checked, every malformed line
reported with its file and line number."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Beir:
    """A BEIR directory read whole: documents (id -> title and text joined), the judged
    queries (id -> text) and their judgements (query id -> document id -> grade)."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_digest: str


def read_beir(directory: str | Path, split: str = "test") -> Beir:
    """Read and check a BEIR directory; a malformed line is a ``ValueError`` naming its file
    and line, a missing file a ``FileNotFoundError``."""
    directory = Path(directory)
    corpus_file = directory / "corpus.jsonl"
    corpus, digest = {}, hashlib.sha256()
    for where, record in _json_lines(corpus_file):
        digest.update(json.dumps(record, sort_keys=True).encode())
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string")
        title = record.get("title") or ""
        corpus[_id(record, where)] = f"{title}\n{text}" if title else text
    queries = {_id(record, where): str(record.get("text", "")) for where, record in _json_lines(directory / "queries.jsonl")}
    qrels_file = directory / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with _opened(qrels_file) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or (number == 1 and _is_header(line)):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise ValueError(f"{qrels_file}:{number}: expected query-id, corpus-id, score separated by tabs")
            try:
                grade = int(float(fields[2]))
            except ValueError:
                raise ValueError(f"{qrels_file}:{number}: score '{fields[2]}' is not a number") from None
            qrels.setdefault(fields[0], {})[fields[1]] = grade
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise ValueError(f"{qrels_file}: {len(unknown)} judged queries are not in queries.jsonl (e.g. '{unknown[0]}')")
    if not qrels:
        raise ValueError(f"{qrels_file}: no judgements")
    return Beir(corpus, {q: queries[q] for q in qrels}, qrels, digest.hexdigest())


def _opened(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a BEIR directory has corpus.jsonl, queries.jsonl, qrels/)")
    return path.open(encoding="utf-8-sig")  # a byte-order mark is read past, as enrich run does


def _is_header(line: str) -> bool:
    """Whether a qrels file's first line is BEIR's header (``query-id corpus-id score``), not a
    judgement: its score column is not a number."""
    fields = line.rstrip("\n").split("\t")
    try:
        float(fields[-1])
    except ValueError:
        return True
    return False


def _json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    with _opened(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", record


def _id(record: dict, where: str) -> str:
    if record.get("_id") in (None, ""):
        raise ValueError(f"{where}: missing '_id'")
    return str(record["_id"])
