"""Elasticsearch's ``chunking_settings``: cut long texts into chunks the model sees whole.

    settings = parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 250})
    for start, end in chunk(text, settings):
        embed(text[start:end])

``parsing`` validates an endpoint's ``chunking_settings`` with Elasticsearch's rules and
messages into the typed ``settings``; ``chunkers`` cuts where Elasticsearch's chunkers cut,
on ICU word and sentence boundaries (``segmenter``). Beam-free, like the rest of ``inference``.
"""

from inference_enrich.inference.chunking.chunkers import Chunk, chunk
from inference_enrich.inference.chunking.segmenter import count_words
from inference_enrich.inference.chunking.parsing import ChunkingSettingsError, parse_chunking_settings
from inference_enrich.inference.chunking.settings import (
    DEFAULT_CHUNKING_SETTINGS,
    SEPARATOR_GROUPS,
    ChunkingSettings,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)

__all__ = [
    "Chunk",
    "chunk",
    "count_words",
    "DEFAULT_CHUNKING_SETTINGS",
    "SEPARATOR_GROUPS",
    "ChunkingSettings",
    "ChunkingSettingsError",
    "NoneChunkingSettings",
    "RecursiveChunkingSettings",
    "SentenceChunkingSettings",
    "WordChunkingSettings",
    "parse_chunking_settings",
]
