"""A model directory's tokenizer read from ``tokenizer.json`` by the ``tokenizers`` package.

This is the same Rust tokenizer ``transformers``' fast tokenizers wrap, without importing
``transformers`` (seconds of start-up). Token ids, special tokens and the vocabulary must be
what ``AutoTokenizer`` gives for the same directory; tests/test_native_bert.py checks it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from inference_enrich.inference.bert.support import SPECIAL_TOKEN_KEYS
from inference_enrich.inference.bert.support import token_text as _token_text


class FastTokenizer:
    """Encodes batches of texts with special tokens, truncated to a length set once.

    The length is fixed at construction (``enable_truncation`` mutates the Rust tokenizer,
    so changing it per call would not be safe across threads)."""

    def __init__(self, model_path: str | Path, max_length: int | None = None) -> None:
        from tokenizers import Tokenizer

        path = Path(model_path)
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        config_file = path / "tokenizer_config.json"
        self._config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if max_length is not None:
            self.set_max_length(max_length)

    def set_max_length(self, max_length: int) -> None:
        """Truncate every text to ``max_length`` ids, special tokens included (the
        ``truncation=True, max_length=...`` of ``transformers``). Call before sharing."""
        self._tokenizer.enable_truncation(max_length=max_length)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, [CLS] ... [SEP] included."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def token_id(self, name: str) -> int | None:
        """The id of a named special token (``"pad_token"``, ``"sep_token"``, ...), or None."""
        text = _token_text(self._config.get(name))
        return None if text is None else self._tokenizer.token_to_id(text)

    @property
    def pad_token_id(self) -> int:
        pad = self.token_id("pad_token")
        return 0 if pad is None else pad

    @property
    def sep_token_id(self) -> int | None:
        return self.token_id("sep_token")

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of the named special tokens and ``additional_special_tokens``, as
        ``transformers``' ``all_special_ids`` lists them."""
        names = [_token_text(self._config.get(key)) for key in SPECIAL_TOKEN_KEYS]
        for extras in ("additional_special_tokens", "extra_special_tokens"):  # transformers 4 and 5 names
            listed = self._config.get(extras) or []
            names += [_token_text(extra) for extra in (listed if isinstance(listed, list) else [])]
        ids = {self._tokenizer.token_to_id(name) for name in names if name is not None}
        return sorted(i for i in ids if i is not None)

    @property
    def model_max_length(self) -> int | None:
        limit = self._config.get("model_max_length")
        return limit if isinstance(limit, int) else None

    def vocabulary(self, size: int) -> list[str]:
        """Token text of ids ``0 .. size - 1`` (``""`` for an id the tokenizer lacks)."""
        return [self._tokenizer.id_to_token(i) or "" for i in range(size)]
