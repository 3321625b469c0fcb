"""Tokenising off the model thread, with each text first cut to what the model can see.

A 9 MB text costs the tokenizer seconds for the 512 tokens the model keeps; on the model
thread those seconds hold up every other request. So (1) a text is cut by characters before
it is tokenised, and (2) tokenising runs in a small shared pool of threads, while the model
thread only runs forward passes (the Rust tokenizer releases the GIL while it works).

The cut is exact for tokenizers that split words at whitespace (BERT's WordPiece, as both
packaged models have): the text is cut at a whitespace before ``max_sequence_length x
CHARS_PER_TOKEN`` characters, so the cut part's tokens are the whole text's first tokens.
If that part turns out to hold fewer tokens than the model sees (a text of mostly spaces,
or one enormous word: 9 MB without whitespace is one ``[UNK]``), the cut is doubled until it
holds enough or the whole text is taken; ``is_truncated`` is therefore true exactly when the
whole text has more tokens than the model sees. That can cost the tokenizer tens of seconds
(9 MB of ``x``: 27 s whole), so jobs holding a text longer than the cut are tokenised in a
lane of their own (``TokenizerPool``): they wait behind each other, never in front of a
small request; and a job whose request was withdrawn (timed out) stops growing its cut.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

from inference_enrich.inference import ModelRuntime, TokenizedText

CHARS_PER_TOKEN = 32
"""Characters kept per token the model sees: a WordPiece token spans a few characters of
text, so this keeps many times what the model needs and costs microseconds to tokenise."""
WHITESPACE_LOOKBACK = 256
"""How far back from the cut a whitespace is looked for; a word longer than this is one
unknown token to WordPiece whether it is cut or not."""
TOKENIZER_THREADS = 2
LONG_TEXT_THREADS = 1
THREAD_PREFIX = "tokenize"


def cut_at(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a whitespace where one is near."""
    if len(text) <= limit:
        return text
    for position in range(limit, max(limit - WHITESPACE_LOOKBACK, 0), -1):
        if text[position].isspace():
            return text[:position]
    return text[:limit]


def cut_limit(runtime: ModelRuntime) -> int:
    """The characters of a text tokenised first (see the module docstring)."""
    return runtime.max_sequence_length * CHARS_PER_TOKEN


def tokenize_cut(runtime: ModelRuntime, texts: Sequence[str],
                 withdrawn: Callable[[], bool] = lambda: False) -> list[TokenizedText]:
    """``runtime.tokenize(texts)``, equal in result, but no text longer than the model can
    see reaches the tokenizer whole (see the module docstring). Once ``withdrawn()`` is true
    nobody waits for the result: the cuts stop growing (the result is then incomplete)."""
    limit = cut_limit(runtime)
    cut = [cut_at(text, limit) for text in texts]
    tokenized = runtime.tokenize(cut)
    for index, (text, part) in enumerate(zip(texts, cut)):
        grown = limit
        while len(part) < len(text) and not tokenized[index].is_truncated and not withdrawn():
            grown *= 2  # fewer tokens than characters suggested: take more of the text
            part = cut_at(text, grown)
            (tokenized[index],) = runtime.tokenize([part])
    return tokenized


class TokenizerPool:
    """The threads that tokenise for every local model of one server, in two lanes: jobs
    whose texts all fit the cut (microseconds each), and jobs holding a longer text, which
    may need all of it tokenised (see the module docstring)."""

    def __init__(self) -> None:
        self._short = ThreadPoolExecutor(TOKENIZER_THREADS, thread_name_prefix=THREAD_PREFIX)
        self._long = ThreadPoolExecutor(LONG_TEXT_THREADS, thread_name_prefix=f"{THREAD_PREFIX}-long")

    def submit(self, texts: Sequence[str], limit: int, task: Callable[[], None]) -> Future:
        """Run ``task`` (tokenising ``texts``) in the lane the longest of ``texts`` belongs to."""
        lane = self._long if any(len(text) > limit for text in texts) else self._short
        return lane.submit(task)

    def shutdown(self, wait: bool = True) -> None:
        self._short.shutdown(wait=wait)
        self._long.shutdown(wait=wait)


def tokenizer_pool() -> TokenizerPool:
    """The tokenizer threads of one server (see ``TokenizerPool``)."""
    return TokenizerPool()


_SHARED: list[TokenizerPool] = []


def shared_tokenizer_pool() -> TokenizerPool:
    """The process's tokenizer pool, for workers built without a server's (tests, tools)."""
    if not _SHARED:
        _SHARED.append(tokenizer_pool())
    return _SHARED[0]
