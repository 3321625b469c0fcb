"""chunking_settings: Elasticsearch's validation and messages, and chunks cut where ES cuts them.

The long text is tests/data/python_reference_prose.txt (about 4,700 words of the Python
Language Reference, see tests/data/README.md). Words are counted with the chunker's own ICU
segmenter, as Elasticsearch counts them. Expected chunks in the small cases were worked out
by hand from Elasticsearch's algorithms (WordBoundaryChunker.java, SentenceBoundaryChunker.java,
RecursiveChunker.java); several mirror cases of ES's own chunker tests. As in ES, the word
right before a line break also counts for the text after it (see the segmenter tests), which
the limits in the recursive cases leave room for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_enrich.inference import EndpointConfigError, infer_texts
from inference_enrich.inference.chunking import (
    SEPARATOR_GROUPS,
    Chunk,
    ChunkingSettingsError,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
    chunk,
    count_words,
    parse_chunking_settings,
)
from inference_enrich.inference.chunking.segmenter import WordSegments

from test_runtimes import assert_sparse_close

LONG_TEXT = (Path(__file__).parent / "data" / "python_reference_prose.txt").read_text(encoding="utf-8")

STRATEGIES = {
    "default": {},
    "sentence-no-overlap": {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 0},
    "sentence-overlap": {"strategy": "sentence", "max_chunk_size": 60, "sentence_overlap": 1},
    "word": {"strategy": "word", "max_chunk_size": 120, "overlap": 40},
    "recursive-plaintext": {"strategy": "recursive", "max_chunk_size": 80, "separator_group": "plaintext"},
    "recursive-markdown": {"strategy": "recursive", "max_chunk_size": 80, "separator_group": "markdown"},
    "recursive-custom": {"strategy": "recursive", "max_chunk_size": 30, "separators": ["\\. "]},
    "none": {"strategy": "none"},
}


def texts(text: str, chunks: list[Chunk]) -> list[str]:
    return [text[start:end] for start, end in chunks]


def numbered(count: int, first: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(first, first + count))


# --- settings: Elasticsearch's validation, messages and defaults ---------------------------------

SCOPE = "[chunking_settings]"
INVALID_SETTINGS = [
    ({"max_chunk_size": 100}, "Can't generate Chunker without ChunkingStrategy provided"),
    ({"strategy": "paragraph"}, "Invalid chunkingStrategy paragraph"),
    ({"strategy": "Sentence", "max_chunk_size": 100}, "Invalid chunkingStrategy Sentence"),
    ({"strategy": "sentence"}, f"{SCOPE} does not contain the required setting [max_chunk_size]"),
    ({"strategy": "sentence", "max_chunk_size": 19},
     f"{SCOPE} Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to [20.0]"),
    ({"strategy": "sentence", "max_chunk_size": 0}, f"{SCOPE} Invalid value [0]. [max_chunk_size] must be a positive integer"),
    ({"strategy": "sentence", "max_chunk_size": "250"},
     "field [max_chunk_size] is not of the expected type. The value [250] cannot be converted to a [Integer]"),
    ({"strategy": "sentence", "max_chunk_size": 250.0},
     "field [max_chunk_size] is not of the expected type. The value [250.0] cannot be converted to a [Integer]"),
    ({"strategy": "sentence", "max_chunk_size": True},
     "field [max_chunk_size] is not of the expected type. The value [true] cannot be converted to a [Integer]"),
    ({"strategy": "sentence", "max_chunk_size": 2**31},
     "field [max_chunk_size] is not of the expected type. The value [2147483648] cannot be converted to a [Integer]"),
    ({"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 2}, "sentence_overlap[2] must be either 0 or 1"),
    ({"strategy": "sentence", "max_chunk_size": 100, "overlap": 10},
     "Sentence based chunking settings can not have the following settings: [overlap]"),
    ({"strategy": "word", "max_chunk_size": 301, "overlap": 10},
     f"{SCOPE} Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]"),
    ({"strategy": "word", "max_chunk_size": 9, "overlap": 1},
     f"{SCOPE} Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0]"),
    ({"strategy": "word", "max_chunk_size": 100}, f"{SCOPE} does not contain the required setting [overlap]"),
    ({"strategy": "word", "max_chunk_size": 100, "overlap": 0}, f"{SCOPE} Invalid value [0]. [overlap] must be a positive integer"),
    ({"strategy": "word", "max_chunk_size": 101, "overlap": 51},
     f"{SCOPE} Invalid value [51.0]. [overlap] must be a less than or equal to [50.0]"),
    ({"strategy": "word", "max_chunk_size": 100, "overlap": 10, "sentence_overlap": 1},
     "Word based chunking settings can not have the following settings: [sentence_overlap]"),
    ({"strategy": "recursive"}, f"{SCOPE} does not contain the required setting [max_chunk_size]"),
    ({"strategy": "recursive", "max_chunk_size": 301},
     f"{SCOPE} Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown", "separators": ["\n"]},
     "Recursive chunking settings can not have both separators and separator_set"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separators": []},
     "Recursive chunking settings can not have an empty list of separators"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separator_group": "html"},
     f"{SCOPE} Invalid value [html] received. [separator_group] must be one of [markdown, plaintext]"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separator_group": ""},
     f"{SCOPE} Invalid value empty string. [separator_group] must be a non-empty string"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separators": "\n\n"},
     "field [separators] is not of the expected type. The value [\n\n] cannot be converted to a [List]"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separators": ["\n", 7]},
     "field [separators] is not of the expected type. The value [7] cannot be converted to a [String]"),
    ({"strategy": "recursive", "max_chunk_size": 100, "separators": ["(unclosed"]},
     "Recursive chunking settings separator [(unclosed] is not a valid regular expression: missing ), unterminated subpattern at position 0"),
    ({"strategy": "recursive", "max_chunk_size": 100, "overlap": 5},
     "Recursive chunking settings can not have the following settings: [overlap]"),
    ({"strategy": "none", "max_chunk_size": 100},
     "When chunking is disabled (none), settings can not have the following: [max_chunk_size]"),
]


@pytest.mark.parametrize("settings, message", INVALID_SETTINGS, ids=[m[:60] for _, m in INVALID_SETTINGS])
def test_invalid_settings_fail_with_elasticsearch_message(settings, message):
    with pytest.raises(ChunkingSettingsError) as raised:
        parse_chunking_settings(settings)
    unwrapped = str(raised.value) in (message, f"Validation Failed: 1: {message};")
    assert unwrapped, str(raised.value)
    assert raised.value.errors == [message]


def test_every_problem_is_reported_at_once_numbered_as_elasticsearch_does():
    with pytest.raises(ChunkingSettingsError) as raised:
        parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 5, "sentence_overlap": 3, "size": 1})
    assert str(raised.value) == (
        "Validation Failed: "
        "1: Sentence based chunking settings can not have the following settings: [size];"
        f"2: {SCOPE} Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [20.0];"
        "3: sentence_overlap[3] must be either 0 or 1;"
    )
    # An endpoint definition error like any other, so the endpoint loader reports it as such.
    assert isinstance(raised.value, EndpointConfigError)


def test_no_settings_means_no_chunking_and_empty_settings_mean_the_default():
    assert parse_chunking_settings(None) is None
    assert parse_chunking_settings({}).to_dict() == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}


@pytest.mark.parametrize(
    "given, returned",
    [
        ({"strategy": "sentence", "max_chunk_size": 100}, {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 1}),
        ({"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0},
         {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}),
        ({"strategy": "word", "max_chunk_size": 300, "overlap": 150}, {"strategy": "word", "max_chunk_size": 300, "overlap": 150}),
        ({"strategy": "recursive", "max_chunk_size": 10},
         {"strategy": "recursive", "max_chunk_size": 10, "separators": list(SEPARATOR_GROUPS["plaintext"])}),
        ({"strategy": "recursive", "max_chunk_size": 200, "separator_group": " Markdown "},
         {"strategy": "recursive", "max_chunk_size": 200, "separators": list(SEPARATOR_GROUPS["markdown"])}),
        ({"strategy": "recursive", "max_chunk_size": 200, "separators": ["\n---\n", "\n"]},
         {"strategy": "recursive", "max_chunk_size": 200, "separators": ["\n---\n", "\n"]}),
        ({"strategy": "none"}, {"strategy": "none"}),
    ],
)
def test_settings_are_returned_as_elasticsearch_returns_them_on_get(given, returned):
    settings = parse_chunking_settings(given)
    assert settings.to_dict() == returned
    assert parse_chunking_settings(settings.to_dict()) == settings


def test_separator_groups_are_elasticsearchs():
    assert SEPARATOR_GROUPS["plaintext"] == ("(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)")
    assert SEPARATOR_GROUPS["markdown"][:6] == tuple("\n" + "#" * level + " " for level in range(1, 7))
    assert SEPARATOR_GROUPS["markdown"][6:] == ("\n^(?!\\s*$).*\\n-{1,}\\n", "\n^(?!\\s*$).*\\n={1,}\\n")


# --- the segmenter -------------------------------------------------------------------------------


def test_words_are_icu_words():
    # Contractions, numbers and dotted names are one word each, a hyphen splits ("e", "mail"),
    # punctuation and spaces are none.
    assert count_words("Won't you chunk 3,000.5 items of os.path, e-mail?") == 9
    assert count_words("東京は大きい。") >= 2  # ICU's dictionary splits CJK text into words
    assert count_words(" , . — ") == 0


def test_word_count_starts_at_the_boundary_before_start_as_elasticsearch_does():
    # ES's ChunkerUtils.countWords starts at the boundary preceding `start`: the word right
    # before a line break is counted with the next sentence too (it only ever shrinks chunks).
    text = "Title\nBody text."
    assert WordSegments(text).count_words(6, len(text)) == 3
    assert WordSegments(text).count_words(0, 6) == 1
    spaced = "One two. Body text."
    assert WordSegments(spaced).count_words(9, len(spaced)) == 2


# --- every strategy on the long text: offsets, coverage, order, word limits ----------------------


@pytest.fixture(scope="module")
def long_text_chunks():
    return {name: chunk(LONG_TEXT, parse_chunking_settings(settings)) for name, settings in STRATEGIES.items()}


@pytest.mark.parametrize("name", STRATEGIES)
def test_chunks_are_in_text_order_and_cover_every_non_space_character(name, long_text_chunks):
    chunks = long_text_chunks[name]
    assert all(0 <= start < end <= len(LONG_TEXT) for start, end in chunks)
    assert [c.start_offset for c in chunks] == sorted(c.start_offset for c in chunks)
    assert [c.end_offset for c in chunks] == sorted(c.end_offset for c in chunks)
    covered = bytearray(len(LONG_TEXT))
    for start, end in chunks:
        covered[start:end] = b"\x01" * (end - start)
    uncovered = [i for i, char in enumerate(LONG_TEXT) if not covered[i] and not char.isspace()]
    assert uncovered == []
    assert all(piece.strip() for piece in texts(LONG_TEXT, chunks))


@pytest.mark.parametrize("name", ["sentence-no-overlap", "recursive-plaintext", "recursive-markdown", "recursive-custom", "none"])
def test_chunks_without_overlap_put_the_text_back_together(name, long_text_chunks):
    chunks = long_text_chunks[name]
    assert "".join(texts(LONG_TEXT, chunks)) == LONG_TEXT
    assert all(a.end_offset == b.start_offset for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "none"])
def test_no_chunk_holds_more_words_than_max_chunk_size(name, long_text_chunks):
    maximum = parse_chunking_settings(STRATEGIES[name]).max_chunk_size
    counts = [count_words(piece) for piece in texts(LONG_TEXT, long_text_chunks[name])]
    assert max(counts) <= maximum
    assert len(counts) > count_words(LONG_TEXT) // maximum  # the text really was cut
    if name == "word":  # word windows are full, but for the last
        assert set(counts[:-1]) == {maximum}


def test_none_is_one_chunk_of_the_whole_text(long_text_chunks):
    assert long_text_chunks["none"] == [Chunk(0, len(LONG_TEXT))]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("text", ["", "   ", "\n\n", "word"])
def test_text_without_room_to_cut_is_one_chunk(name, text):
    assert chunk(text, parse_chunking_settings(STRATEGIES[name])) == [Chunk(0, len(text))]


# --- sentence ------------------------------------------------------------------------------------


def sentences(*lengths: int) -> list[str]:
    """Sentences "S<i> 1 2 ... n-1. " of the given word counts."""
    return [f"S{i} " + " ".join(str(w) for w in range(1, n)) + ". " for i, n in enumerate(lengths)]


def test_sentences_are_packed_whole_up_to_max_chunk_size():
    parts = sentences(12, 12, 12, 12, 12)
    text = "".join(parts)
    chunks = chunk(text, SentenceChunkingSettings(30, sentence_overlap=0))
    assert texts(text, chunks) == [parts[0] + parts[1], parts[2] + parts[3], parts[4]]


def test_sentence_overlap_repeats_the_previous_sentence():
    parts = sentences(12, 12, 12, 12, 12)
    text = "".join(parts)
    chunks = chunk(text, SentenceChunkingSettings(30, sentence_overlap=1))
    assert texts(text, chunks) == [parts[0] + parts[1], parts[1] + parts[2], parts[2] + parts[3], parts[3] + parts[4]]


def test_sentence_overlap_keeps_only_the_last_20_words_of_a_long_previous_sentence():
    parts = sentences(45, 30)
    text = "".join(parts)
    first, second = texts(text, chunk(text, SentenceChunkingSettings(60, sentence_overlap=1)))
    assert first == parts[0]
    # 45 + 30 words do not fit in 60, so only min(60 / 2, 20) = 20 words of S0 are repeated.
    assert second == " ".join(str(w) for w in range(25, 44)) + " 44. " + parts[1]
    assert count_words(second) == 20 + 30


def test_short_long_short_sentences_with_overlap():
    # Elasticsearch's SentenceBoundaryChunkerTests.testShortLongShortSentences_WithOverlap, restated:
    # the 30-word sentence does not fit after the 15-word one, so it is cut by words.
    parts = sentences(15, 30, 20, 5)
    pieces = texts("".join(parts), chunk("".join(parts), SentenceChunkingSettings(40, sentence_overlap=1)))
    assert len(pieces) == 5
    assert pieces[0] == parts[0]
    assert pieces[1].startswith("S0 ") and not pieces[1].strip().endswith(".")
    assert pieces[2].strip().endswith(".") and pieces[3].strip().endswith(".")
    assert pieces[4] == parts[2] + parts[3]


def test_a_sentence_longer_than_the_maximum_is_split_by_words_with_overlap():
    text = "Intro sentence here. Long " + numbered(100) + ". Outro sentence."
    pieces = texts(text, chunk(text, SentenceChunkingSettings(20, sentence_overlap=0)))
    assert pieces[0] == "Intro sentence here. "
    assert pieces[-1].endswith(". Outro sentence.")
    assert all(count_words(piece) <= 20 for piece in pieces)
    # Word windows inside the long sentence overlap by min(20, (20 - 1) // 2) = 9 words.
    inside = [piece.split() for piece in pieces[1:-1]]
    assert inside[0][:3] == ["Long", "w0", "w1"] and all(len(words) == 20 for words in inside)
    for before, after in zip(inside, inside[1:]):
        assert after[:9] == before[-9:]


# --- word ----------------------------------------------------------------------------------------


def test_word_windows_overlap_by_overlap_words():
    text = numbered(25) + "."
    pieces = texts(text, chunk(text, WordChunkingSettings(10, 3)))
    assert [piece.split() for piece in pieces] == [
        numbered(10).split(),
        numbered(10, first=7).split(),
        numbered(10, first=14).split(),
        (numbered(4, first=21) + ".").split(),
    ]
    # A window ends after its last word; the space before the next word opens the next window.
    assert pieces[1].startswith(" w7 ") and pieces[0].endswith("w9")


def test_word_chunks_at_word_boundaries_as_elasticsearch():
    # Elasticsearch's WordBoundaryChunkerTests.testPunctuation: punctuation opens the next chunk.
    assert texts("Comma, separated", chunk("Comma, separated", WordChunkingSettings(1, 0))) == ["Comma", ", separated"]
    assert texts("Mme. Thénardier", chunk("Mme. Thénardier", WordChunkingSettings(1, 0))) == ["Mme", ". Thénardier"]
    assert texts("Won't you chunk", chunk("Won't you chunk", WordChunkingSettings(1, 0))) == ["Won't", " you", " chunk"]


@pytest.mark.parametrize("words, size, overlap", [(10, 10, 4), (22, 10, 2), (50, 20, 4), (73, 20, 10), (100, 10, 4)])
def test_number_of_word_chunks(words, size, overlap):
    text = numbered(words) + " "
    expected = 1 + -(-(words - size) // (size - overlap)) if words > size else 1
    assert len(chunk(text, WordChunkingSettings(size, overlap))) == expected


def test_last_word_chunk_runs_to_the_end_of_the_text():
    # Elasticsearch would end the last chunk at "w19" and leave the full stop out of every chunk.
    text = numbered(20) + "."
    chunks = chunk(text, WordChunkingSettings(10, 5))
    assert [c.end_offset for c in chunks][-1] == len(text)
    assert len(chunks) == 3


# --- recursive -----------------------------------------------------------------------------------

TEN_WORDS = "Every test sentence like this one holds exactly ten words."


def test_recursive_splits_on_separators_and_merges_neighbours_up_to_the_maximum():
    text = "\n\n".join([TEN_WORDS, TEN_WORDS, TEN_WORDS + "\n" + TEN_WORDS + "\n" + TEN_WORDS])
    pieces = texts(text, chunk(text, parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 25})))
    # Paragraphs first: the first two merge (10 + 11 words: "words." before a line break counts
    # for the next piece too, as in ES); the third (31) is split by line and merged again.
    # Each piece after the first starts with the separator that cut it.
    assert pieces == [
        TEN_WORDS + "\n\n" + TEN_WORDS,
        "\n\n" + TEN_WORDS + "\n" + TEN_WORDS,
        "\n" + TEN_WORDS,
    ]


def test_recursive_falls_back_to_sentences_when_no_separator_cuts():
    text = " ".join([TEN_WORDS] * 4)
    settings = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 15, "separators": ["NOT IN THE TEXT"]})
    assert texts(text, chunk(text, settings)) == [TEN_WORDS + " "] * 3 + [TEN_WORDS]


def test_recursive_markdown_cuts_at_headings():
    sections = [
        "# Title\n" + TEN_WORDS,
        "\n## First section\n" + TEN_WORDS,
        "\nSecond section\n--------------\n" + TEN_WORDS,
        "\nThird section\n=============\n" + TEN_WORDS,
        "\n### Deeper\n" + TEN_WORDS,
    ]
    text = "".join(sections)
    pieces = texts(text, chunk(text, parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 14, "separator_group": "markdown"})))
    assert pieces == sections


def test_recursive_markdown_finds_the_setext_headings_of_the_long_text(long_text_chunks):
    starts = [piece.split("\n")[1:3] for piece in texts(LONG_TEXT, long_text_chunks["recursive-markdown"])[1:]]
    heading_starts = [lines for lines in starts if len(lines) == 2 and set(lines[1]) <= {"-", "="} and lines[1]]
    assert len(heading_starts) >= 10  # "Naming and binding" / "==================" and the like


# --- offsets are Python string indices, whatever the characters ----------------------------------


def test_offsets_index_python_strings_beyond_the_basic_multilingual_plane():
    text = "🙂 Emoji first. 東京は大きい。 Then 👍🏽 more words here. \ud800 Lone surrogate ends it."
    assert texts(text, chunk(text, SentenceChunkingSettings(20, sentence_overlap=0))) == [text]
    words = texts(text, chunk(text, WordChunkingSettings(2, 1)))
    assert words[0] == "🙂 Emoji first" and words[1] == " first. 東京"
    assert words[-1].endswith("ends it.")


# --- the chunks through the model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def default_chunk_texts():
    return texts(LONG_TEXT, chunk(LONG_TEXT, parse_chunking_settings({})))


def test_default_chunks_fit_the_sparse_models_512_tokens(sparse_runtime, default_chunk_texts):
    # The whole text is far beyond the limit; no chunk of it is (so nothing is truncated).
    (whole,) = sparse_runtime.tokenize([LONG_TEXT])
    assert whole.is_truncated
    tokenized = sparse_runtime.tokenize(default_chunk_texts)
    assert max(len(t.ids) for t in tokenized) <= 512
    assert not any(t.is_truncated for t in tokenized)


def test_each_chunk_embeds_as_the_textbook_splade_computation(sparse_runtime, textbook_sparse, default_chunk_texts):
    results = infer_texts(sparse_runtime, default_chunk_texts, max_batch_tokens=2048)
    for piece, result in zip(default_chunk_texts, results):
        assert not result.is_truncated
        assert_sparse_close(result.embedding, textbook_sparse(piece), 1e-4)
