"""``chunking_settings`` of an endpoint, parsed and validated exactly as Elasticsearch does.

The names, limits, defaults and error messages are those of Elasticsearch 8.19 / 9.1, the
release that added the ``recursive`` strategy: ChunkingSettingsBuilder.java,
SentenceBoundaryChunkingSettings.java, WordBoundaryChunkingSettings.java,
RecursiveChunkingSettings.java, NoneChunkingSettings.java, SeparatorGroup.java, and the
messages of ServiceUtils.java / ValidationException.java. What Elasticsearch does, and so
do we:

- no ``chunking_settings`` at all: no chunking (ES applies its default only to endpoints it
  creates itself; our endpoints without the key behave as before);
- ``{}``: the default, ``sentence`` with ``max_chunk_size`` 250 and ``sentence_overlap`` 1;
- once a ``strategy`` is named, ``max_chunk_size`` is required (ES's docs call it optional
  with a default of 250, but its code requires it), and so is ``overlap`` for ``word``,
  where it must be at least 1;
- ``sentence``: ``max_chunk_size`` >= 20, ``sentence_overlap`` 0 or 1 (default 1);
  ``word``: ``max_chunk_size`` 10..300, ``overlap`` 1..max_chunk_size/2;
  ``recursive``: ``max_chunk_size`` 10..300 and either ``separators`` (regular expressions,
  a non-empty list) or ``separator_group`` (``plaintext``, the default, or ``markdown``);
  ``none``: nothing else;
- every problem is collected and reported at once: ``Validation Failed: 1: ...;2: ...;``.

Two additions of ours, each with its own message: a separator that is not a valid regular
expression is refused here (ES fails later, when it first chunks a document), and ``none``
refuses other keys with ES's own NoneChunkingSettings message (ES's builder ignores them).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from inference_enrich.inference.chunking.settings import (
    DEFAULT_CHUNKING_SETTINGS,
    MAX_CHUNK_SIZE,
    OVERLAP,
    SENTENCE_OVERLAP,
    SEPARATOR_FLAGS,
    SEPARATOR_GROUP,
    SEPARATOR_GROUPS,
    SEPARATORS,
    STRATEGY,
    ChunkingSettings,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)
from inference_enrich.inference.errors import EndpointConfigError

SCOPE = "chunking_settings"


class ChunkingSettingsError(EndpointConfigError):
    """Invalid ``chunking_settings``; the message is Elasticsearch's. ``errors`` lists each problem."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # a JSON number ES reads as an Integer


def _java_str(value: Any) -> str:
    """``value`` as Java's ``toString`` would print it in ES's messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_java_str(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_java_str(k)}={_java_str(v)}" for k, v in value.items()) + "}"
    return str(value)


def _java_double(value: int) -> str:
    return f"{float(value)}"  # ES formats these limits through a double: 300 -> "300.0"


class _Validation:
    """Reads settings out of a copy of the map, collecting ES's messages like its ValidationException."""

    def __init__(self, settings: Mapping[str, Any], valid_keys: tuple[str, ...], unknown_keys_message: str) -> None:
        self.settings = dict(settings)
        self.errors: list[str] = []
        unknown = [key for key in self.settings if key not in valid_keys]
        if unknown:
            self.errors.append(f"{unknown_keys_message}: {_java_str(unknown)}")

    def fail_if_errors(self) -> None:
        if self.errors:
            message = "Validation Failed: " + "".join(f"{n}: {e};" for n, e in enumerate(self.errors, 1))
            raise ChunkingSettingsError(message, self.errors)

    @staticmethod
    def present(value: int | None) -> int:
        """A required value once ``fail_if_errors`` passed: a missing one was an error."""
        assert value is not None, "fail_if_errors raises for a missing required value"
        return value

    def _type_error(self, key: str, value: Any, expected: str) -> None:
        self.errors.append(
            f"field [{key}] is not of the expected type. The value [{_java_str(value)}] cannot be converted to a [{expected}]"
        )

    def optional_int(self, key: str) -> int | None:
        value = self.settings.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not _INT_MIN <= value <= _INT_MAX:
            self._type_error(key, value, "Integer")
            return None
        return value

    def required_positive_int(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        before = len(self.errors)
        value = self.optional_int(key)
        if len(self.errors) > before:
            return None
        if value is None:
            self.errors.append(f"[{SCOPE}] does not contain the required setting [{key}]")
            return None
        if value <= 0:
            self.errors.append(f"[{SCOPE}] Invalid value [{value}]. [{key}] must be a positive integer")
            return None
        if minimum is not None and value < minimum:
            self.errors.append(
                f"[{SCOPE}] Invalid value [{_java_double(value)}]. [{key}] must be a greater than or equal to [{_java_double(minimum)}]"
            )
            return None
        if maximum is not None and value > maximum:
            self.errors.append(
                f"[{SCOPE}] Invalid value [{_java_double(value)}]. [{key}] must be a less than or equal to [{_java_double(maximum)}]"
            )
            return None
        return value

    def optional_non_empty_string(self, key: str) -> str | None:
        value = self.settings.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self._type_error(key, value, "String")
            return None
        if not value:
            self.errors.append(f"[{SCOPE}] Invalid value empty string. [{key}] must be a non-empty string")
            return None
        return value

    def optional_string_list(self, key: str) -> list[str] | None:
        value = self.settings.get(key)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            self._type_error(key, value, "List")
            return None
        before = len(self.errors)
        for item in value:
            if not isinstance(item, str):
                self._type_error(key, item, "String")
        return list(value) if len(self.errors) == before else None


def _sentence(settings: Mapping[str, Any]) -> SentenceChunkingSettings:
    check = _Validation(
        settings, (STRATEGY, MAX_CHUNK_SIZE, SENTENCE_OVERLAP), "Sentence based chunking settings can not have the following settings"
    )
    max_chunk_size = check.required_positive_int(MAX_CHUNK_SIZE, minimum=20)
    sentence_overlap = check.optional_int(SENTENCE_OVERLAP)
    if sentence_overlap is None:
        sentence_overlap = 1
    elif sentence_overlap not in (0, 1):
        check.errors.append(f"{SENTENCE_OVERLAP}[{sentence_overlap}] must be either 0 or 1")
    check.fail_if_errors()
    return SentenceChunkingSettings(check.present(max_chunk_size), sentence_overlap)


def _word(settings: Mapping[str, Any]) -> WordChunkingSettings:
    check = _Validation(
        settings, (STRATEGY, MAX_CHUNK_SIZE, OVERLAP), "Word based chunking settings can not have the following settings"
    )
    max_chunk_size = check.required_positive_int(MAX_CHUNK_SIZE, minimum=10, maximum=300)
    overlap = None
    if max_chunk_size is not None:
        overlap = check.required_positive_int(OVERLAP, maximum=max_chunk_size // 2)
    check.fail_if_errors()
    return WordChunkingSettings(check.present(max_chunk_size), check.present(overlap))


def _recursive(settings: Mapping[str, Any]) -> RecursiveChunkingSettings:
    check = _Validation(
        settings,
        (STRATEGY, MAX_CHUNK_SIZE, SEPARATOR_GROUP, SEPARATORS),
        "Recursive chunking settings can not have the following settings",
    )
    max_chunk_size = check.required_positive_int(MAX_CHUNK_SIZE, minimum=10, maximum=300)
    group = check.optional_non_empty_string(SEPARATOR_GROUP)
    if group is not None and group.strip().lower() not in SEPARATOR_GROUPS:
        check.errors.append(
            f"[{SCOPE}] Invalid value [{group}] received. [{SEPARATOR_GROUP}] must be one of [{', '.join(sorted(SEPARATOR_GROUPS))}]"
        )
        group = None
    separators = check.optional_string_list(SEPARATORS)
    if separators is not None and group is not None:
        check.errors.append("Recursive chunking settings can not have both separators and separator_set")
    if group is not None:
        separators = list(SEPARATOR_GROUPS[group.strip().lower()])
    elif separators is not None and not separators:
        check.errors.append("Recursive chunking settings can not have an empty list of separators")
    for separator in separators or ():
        try:
            re.compile(separator, SEPARATOR_FLAGS)
        except re.error as error:
            check.errors.append(f"Recursive chunking settings separator [{separator}] is not a valid regular expression: {error}")
    check.fail_if_errors()
    if separators is None:
        return RecursiveChunkingSettings(check.present(max_chunk_size))
    return RecursiveChunkingSettings(check.present(max_chunk_size), tuple(separators))


def _none(settings: Mapping[str, Any]) -> NoneChunkingSettings:
    check = _Validation(settings, (STRATEGY,), "When chunking is disabled (none), settings can not have the following")
    check.fail_if_errors()
    return NoneChunkingSettings()


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ChunkingSettings]] = {"sentence": _sentence, "word": _word, "recursive": _recursive, "none": _none}


def parse_chunking_settings(settings: Mapping[str, Any] | None) -> ChunkingSettings | None:
    """The chunking settings of an endpoint body, validated; None when the body has none.

    Raises ChunkingSettingsError with Elasticsearch's message for anything it would refuse.
    """
    if settings is None:
        return None
    if not isinstance(settings, Mapping):
        raise ChunkingSettingsError(f"[{SCOPE}] must be an object, got [{_java_str(settings)}]")
    if not settings:
        return DEFAULT_CHUNKING_SETTINGS
    if STRATEGY not in settings:
        raise ChunkingSettingsError("Can't generate Chunker without ChunkingStrategy provided")
    strategy = _java_str(settings[STRATEGY])
    if strategy not in _PARSERS:
        raise ChunkingSettingsError(f"Invalid chunkingStrategy {strategy}")
    return _PARSERS[strategy](settings)
