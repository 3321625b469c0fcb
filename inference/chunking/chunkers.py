"""Cut a text into chunks where Elasticsearch would, as character offsets into the text.

Each strategy follows its Elasticsearch chunker (WordBoundaryChunker.java,
SentenceBoundaryChunker.java, RecursiveChunker.java, NoopChunker.java): the same ICU
boundaries, the same word counts, the same places to cut and the same overlap. Offsets are
Python string indices (ES's are UTF-16 units; they differ only after characters outside the
Basic Multilingual Plane and point at the same places in the text).

One deliberate difference: ES's word chunker drops what follows the last full chunk when
that is only spaces and punctuation (e.g. the final full stop); our last chunk always runs
to the end of the text, so every character is in a chunk. No word is added by it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from inference_enrich.inference.chunking.segmenter import WordSegments, sentence_boundaries
from inference_enrich.inference.chunking.settings import (
    SEPARATOR_FLAGS,
    ChunkingSettings,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)

MAX_WORDS_OF_PRECEDING_SENTENCE = 20
"""With ``sentence_overlap`` 1, at most this many words of the previous sentence are repeated
(and at most half of ``max_chunk_size``); a sentence split by words overlaps by as many."""


class Chunk(NamedTuple):
    """``text[start_offset:end_offset]`` is the chunk (the names semantic_text stores)."""

    start_offset: int
    end_offset: int


class _WordWindow(NamedTuple):
    start: int
    end: int
    word_count: int


def _word_windows(text: str, size: int, overlap: int) -> list[_WordWindow]:
    """Windows of ``size`` words, each starting ``overlap`` words before the previous one ended.

    A window ends right after its last word; spaces and punctuation after it open the next
    window. The last window, shorter than ``size`` words, runs to the end of the text.
    """
    segments = WordSegments(text)
    windows: list[_WordWindow] = []
    words_in_window = words_since_mark = 0
    window_start = next_window_start = 0
    for end in segments.words():
        words_in_window += 1
        words_since_mark += 1
        if words_in_window >= size:
            windows.append(_WordWindow(window_start, end, words_in_window))
            words_in_window = overlap
            window_start = end if overlap == 0 else next_window_start
        if words_since_mark == size - overlap:
            next_window_start = end
            words_since_mark = 0
    if words_in_window > overlap or not windows:
        windows.append(_WordWindow(window_start, len(text), words_in_window))
    elif windows[-1].end < len(text):
        windows[-1] = windows[-1]._replace(end=len(text))
    return windows


def _word_chunks(text: str, settings: WordChunkingSettings) -> list[Chunk]:
    return [Chunk(w.start, w.end) for w in _word_windows(text, settings.max_chunk_size, settings.overlap)]


def _sentence_chunks(text: str, max_words: int, include_preceding_sentence: bool) -> list[Chunk]:
    """Whole sentences packed greedily up to ``max_words``; a sentence too long alone is cut into
    word windows (overlapping by up to 20 words). With ``include_preceding_sentence`` each new
    chunk starts with the previous sentence, or its last words when both would not fit."""
    words = WordSegments(text)
    chunks: list[Chunk] = []
    chunk_start = chunk_end = sentence_start = chunk_words = 0
    previous_sentence_start = previous_sentence_words = 0
    for sentence_end in sentence_boundaries(text)[1:]:
        sentence_words = words.count_words(sentence_start, sentence_end)
        if chunk_words + sentence_words > max_words:
            next_chunk_words = sentence_words
            if chunk_words > 0:
                chunks.append(Chunk(chunk_start, chunk_end))
                if include_preceding_sentence:
                    if previous_sentence_words + sentence_words > max_words:
                        kept = min(max_words // 2, MAX_WORDS_OF_PRECEDING_SENTENCE)
                        skipped = max(previous_sentence_words - kept, 0)
                        chunk_start = words.skip_words(previous_sentence_start, skipped)
                        chunk_words = previous_sentence_words - skipped + sentence_words
                    else:
                        chunk_start = previous_sentence_start
                        chunk_words = previous_sentence_words + sentence_words
                    next_chunk_words = chunk_words
                else:
                    chunk_start = chunk_end
                    chunk_words = sentence_words
            if next_chunk_words > max_words:
                overlap = min(MAX_WORDS_OF_PRECEDING_SENTENCE, (max_words - 1) // 2)
                windows = _word_windows(text[chunk_start:sentence_end], max_words, overlap)
                chunks.extend(Chunk(chunk_start + w.start, chunk_start + w.end) for w in windows[:-1])
                # The last window is partly filled: the following sentences join it.
                chunk_words = windows[-1].word_count
                chunk_start += windows[-1].start
        else:
            chunk_words += sentence_words
        if include_preceding_sentence:
            previous_sentence_start, previous_sentence_words = sentence_start, sentence_words
        sentence_start = chunk_end = sentence_end
    if chunk_words > 0:
        chunks.append(Chunk(chunk_start, len(text)))
    return chunks or [Chunk(0, len(text))]


def _recursive_chunks(text: str, settings: RecursiveChunkingSettings) -> list[Chunk]:
    """Split on the first separator (a piece starts at its separator), merge neighbouring pieces
    while they fit in ``max_chunk_size`` words, and split what is still too long with the next
    separator; past the last separator, by sentence without overlap."""
    max_words = settings.max_chunk_size
    words = WordSegments(text)
    patterns = [re.compile(separator, SEPARATOR_FLAGS) for separator in settings.separators]

    def pieces(start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int, int]]:
        # Matched in the piece alone, as Java matches in a region: ^ and lookbehinds see its edges.
        cuts = [start + m.start() for m in pattern.finditer(text[start:end])]
        edges = sorted({start, *cuts, end})
        return [(a, b, words.count_words(a, b)) for a, b in zip(edges, edges[1:])]

    def merged(parts: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        result = [parts[0]]
        for start, end, count in parts[1:]:
            last_start, _, last_count = result[-1]
            if last_count + count <= max_words:
                result[-1] = (last_start, end, last_count + count)
            else:
                result.append((start, end, count))
        return result

    def split(start: int, end: int, level: int) -> list[Chunk]:
        if start == end or words.count_words(start, end) <= max_words:
            return [Chunk(start, end)]
        if level == len(patterns):
            return [
                Chunk(start + c.start_offset, start + c.end_offset)
                for c in _sentence_chunks(text[start:end], max_words, include_preceding_sentence=False)
            ]
        chunks: list[Chunk] = []
        for piece_start, piece_end, count in merged(pieces(start, end, patterns[level])):
            if count <= max_words:
                chunks.append(Chunk(piece_start, piece_end))
            else:
                chunks.extend(split(piece_start, piece_end, level + 1))
        return chunks

    return split(0, len(text), 0)


def chunk(text: str, settings: ChunkingSettings) -> list[Chunk]:
    """The chunks of ``text`` under ``settings``, in text order, covering all of it."""
    if isinstance(settings, SentenceChunkingSettings):
        return _sentence_chunks(text, settings.max_chunk_size, settings.sentence_overlap > 0)
    if isinstance(settings, WordChunkingSettings):
        return _word_chunks(text, settings)
    if isinstance(settings, RecursiveChunkingSettings):
        return _recursive_chunks(text, settings)
    if isinstance(settings, NoneChunkingSettings):
        return [Chunk(0, len(text))]
    raise TypeError(f"not chunking settings: {settings!r}")
