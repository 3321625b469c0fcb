"""Word and sentence boundaries from ICU, the segmenter Elasticsearch's chunkers use.

Elasticsearch counts words and finds sentences with ICU4J's ``BreakIterator`` for
``Locale.ROOT`` (SentenceBoundaryChunker.java, WordBoundaryChunker.java, ChunkerUtils.java).
We call the same ICU rules through ``icu4py``, chosen because:

- it ships manylinux wheels with ICU bundled (ICU 78 in icu4py 1.2.0), so nothing compiles
  from source on a developer machine or in CI; ``icupy`` is published as a source
  distribution only (it needs ICU headers and a C++ toolchain) and PyICU is not on the
  package index this project installs from;
- it exposes ICU's word and sentence ``BreakIterator`` instances directly.

Two things icu4py does differently from ICU4J, handled here:

- boundaries are UTF-16 offsets (ICU's native unit); we convert them to Python string
  indices (code points), so offsets can be used to slice the Python string;
- it does not expose ``getRuleStatus()``, which Elasticsearch uses to tell words
  (letters, numbers, kana, ideographs) from the rest (spaces, punctuation). ICU assigns
  those statuses by the Unicode word-break classes of the segment's characters, so we call
  a segment a word when it holds a letter or a number (Unicode categories L* and N*).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate

from icu4py.breakers import SentenceBreaker, WordBreaker

ROOT_LOCALE = "root"
"""Elasticsearch uses ``Locale.ROOT``: no language-specific exceptions (e.g. "Mr.")."""

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _icu_safe(text: str) -> str:
    """``text`` with lone surrogates (valid in a Python string decoded from JSON, not in UTF-8)
    replaced by U+FFFD. Both are one code point and one UTF-16 unit, so offsets do not move."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _utf16_to_index(text: str):
    """A function mapping a UTF-16 boundary offset in ``text`` to a Python string index."""
    if text.isascii() or max(text) <= "\uffff":
        return lambda offset: offset
    # UTF-16 start offset of every astral (two-unit) character; a boundary never falls inside one.
    astral_starts, utf16 = [], 0
    for char in text:
        if char > "\uffff":
            astral_starts.append(utf16)
            utf16 += 2
        else:
            utf16 += 1
    return lambda offset: offset - bisect_left(astral_starts, offset)


def _boundaries(breaker_type, text: str) -> list[int]:
    """Every boundary ICU finds in ``text``, as Python string indices, from 0 to ``len(text)``."""
    to_index = _utf16_to_index(text)
    boundaries = [0]
    if text:
        breaker = breaker_type(_icu_safe(text), ROOT_LOCALE)
        boundaries.extend(to_index(end) for _, end in breaker.segments())
    return boundaries


def sentence_boundaries(text: str) -> list[int]:
    """Sentence boundaries of ``text`` (ICU sentence rules), from 0 to ``len(text)``.

    A sentence keeps its trailing spaces and line break: "One. Two." -> [0, 5, 9]."""
    return _boundaries(SentenceBreaker, text)


def _is_word(segment: str) -> bool:
    return any(char.isalnum() for char in segment)


class WordSegments:
    """ICU word segmentation of one text and Elasticsearch's ways of counting its words.

    ``boundaries[k]`` is the end of the k-th segment (``boundaries[0] == 0``), and
    ``is_word[k]`` tells whether that segment is a word (``is_word[0]`` is False, as ICU's
    status at the start of a text is "none").
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.boundaries = _boundaries(WordBreaker, text)
        self.is_word = [False] + [
            _is_word(text[start:end]) for start, end in zip(self.boundaries, self.boundaries[1:])
        ]
        self._words_through = list(accumulate(self.is_word))  # words in segments 0..k

    def words(self) -> list[int]:
        """The end offset of every word, in text order."""
        return [end for end, word in zip(self.boundaries, self.is_word) if word]

    def _preceding(self, offset: int) -> int:
        """Index of ICU's ``preceding(offset)``: the last boundary before ``offset`` (0 at the start)."""
        return max(bisect_left(self.boundaries, offset) - 1, 0)

    def count_words(self, start: int, end: int) -> int:
        """Words in ``text[start:end]`` counted as Elasticsearch's ``ChunkerUtils.countWords`` does.

        ES starts from the boundary *before* ``start`` and counts the status of every
        boundary up to ``end``, so the segment ending at that earlier boundary is counted
        too when it is a word. That happens only when nothing separates it from ``start``
        but one segment, e.g. after a heading line ("Title\\n" then "Body.") or a sentence
        with no space after its full stop. We keep it: it decides where ES cuts chunks, and
        it can only make chunks smaller, never longer than ``max_chunk_size`` words.
        """
        first = self._preceding(start)
        last = bisect_right(self.boundaries, end) - 1
        before = self._words_through[first - 1] if first > 0 else 0
        return self._words_through[last] - before

    def skip_words(self, start: int, count: int) -> int:
        """The offset after ``count`` words from ``start``, as ES's ``SentenceBoundaryChunker.skipWords``
        (which, like ``count_words``, starts counting at the boundary before ``start``)."""
        index = self._preceding(start)
        skipped = 0
        while index < len(self.boundaries) and skipped < count:
            skipped += self.is_word[index]
            index += 1
        return self.boundaries[index] if index < len(self.boundaries) else len(self.text)


def count_words(text: str) -> int:
    """The number of words in ``text`` (ICU word segments holding a letter or number)."""
    return sum(WordSegments(text).is_word)
