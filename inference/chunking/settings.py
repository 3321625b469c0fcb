"""``chunking_settings`` of an endpoint as typed values: one frozen dataclass per strategy
(what ``chunkers.py`` cuts by, and what ``to_dict`` gives back on GET), Elasticsearch's
separator groups and its default. ``parsing.py`` builds them from a body with
Elasticsearch's rules and messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

STRATEGY, MAX_CHUNK_SIZE = "strategy", "max_chunk_size"
OVERLAP, SENTENCE_OVERLAP = "overlap", "sentence_overlap"
SEPARATORS, SEPARATOR_GROUP = "separators", "separator_group"

SEPARATOR_GROUPS: dict[str, tuple[str, ...]] = {
    # Exactly two line breaks (a paragraph), then exactly one.
    "plaintext": ("(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"),
    # ATX headings from level 1 to 6, then setext headings (a text line underlined with - or =).
    "markdown": (
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n^(?!\\s*$).*\\n-{1,}\\n",
        "\n^(?!\\s*$).*\\n={1,}\\n",
    ),
}
"""Elasticsearch's separator groups (SeparatorGroup.java), as the strings its GET returns."""

SEPARATOR_FLAGS = re.MULTILINE | re.ASCII
"""Java's ``Pattern.MULTILINE`` as ES compiles separators; ``re.ASCII`` gives ``\\s``, ``\\w``,
``\\d`` and case-insensitive matching Java's default (ASCII) meaning."""


@dataclass(frozen=True)
class SentenceChunkingSettings:
    """Whole sentences, packed greedily up to ``max_chunk_size`` words; with ``sentence_overlap``
    1 each chunk repeats the previous chunk's last sentence (at most 20 of its words)."""

    max_chunk_size: int = 250
    sentence_overlap: int = 1
    strategy = "sentence"

    def to_dict(self) -> dict[str, Any]:
        return {STRATEGY: self.strategy, MAX_CHUNK_SIZE: self.max_chunk_size, SENTENCE_OVERLAP: self.sentence_overlap}


@dataclass(frozen=True)
class WordChunkingSettings:
    """Windows of ``max_chunk_size`` words, each starting ``overlap`` words before the previous one ended."""

    max_chunk_size: int
    overlap: int
    strategy = "word"

    def to_dict(self) -> dict[str, Any]:
        return {STRATEGY: self.strategy, MAX_CHUNK_SIZE: self.max_chunk_size, OVERLAP: self.overlap}


@dataclass(frozen=True)
class RecursiveChunkingSettings:
    """Split on each separator in turn (merging neighbours back up to ``max_chunk_size`` words)
    until every piece fits; pieces still too long after the last separator go by sentence."""

    max_chunk_size: int
    separators: tuple[str, ...] = SEPARATOR_GROUPS["plaintext"]
    strategy = "recursive"

    def to_dict(self) -> dict[str, Any]:
        return {STRATEGY: self.strategy, MAX_CHUNK_SIZE: self.max_chunk_size, SEPARATORS: list(self.separators)}


@dataclass(frozen=True)
class NoneChunkingSettings:
    """No chunking: the whole text is one chunk (and is truncated at the model's limit)."""

    strategy = "none"

    def to_dict(self) -> dict[str, Any]:
        return {STRATEGY: self.strategy}


ChunkingSettings = Union[
    SentenceChunkingSettings, WordChunkingSettings, RecursiveChunkingSettings, NoneChunkingSettings
]
DEFAULT_CHUNKING_SETTINGS = SentenceChunkingSettings()
