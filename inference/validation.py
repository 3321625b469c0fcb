"""pydantic's validation errors, worded for the person who has to fix a setting.

Settings are declared once, as pydantic models (``extra="forbid"``, strict types); these
helpers turn a ``ValidationError`` into one ``key: problem`` line per mistake instead of
pydantic's multi-line report, and never echo a secret value (nor a YAML line that may
hold one).
"""

from __future__ import annotations

from typing import Collection, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from inference_enrich.inference.secrets import MASK, masked


class InvalidSetting(ValueError):
    """Raised by a model validator to blame one setting (pydantic would blame the whole model)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


def setting_problems(
    error: ValidationError,
    model: type[BaseModel],
    *,
    quote_descriptions: bool = False,
    secret_keys: Collection[str] = (),
) -> Iterator[tuple[str, str]]:
    """``(key, problem)`` for each mistake in ``error``, raised while validating ``model``.

    ``quote_descriptions``: the model's field descriptions say what a valid value is
    ("a positive integer ..."), so a wrong value reads "expected <description>, got X".
    Values of ``secret_keys`` (and of secret-looking names) are shown as ``***``.
    """
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"])
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, InvalidSetting):
            yield cause.key, str(cause)
        elif item["type"] == "extra_forbidden":
            yield key, f"unknown key (allowed: {', '.join(model.model_fields) or 'none'})"
        elif item["type"] == "missing":
            yield key, "required"
        elif item["type"] == "value_error":
            yield key, str(cause)
        else:
            field = model.model_fields.get(str(item["loc"][0])) if item["loc"] else None
            if quote_descriptions and field is not None and field.description:
                expected = f"expected {field.description}"
            else:
                expected = item["msg"][:1].lower() + item["msg"][1:]
            shown = MASK if key in secret_keys else masked(key, item["input"])
            yield key, f"{expected}, got {shown if shown == MASK else repr(shown)}"


def yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong in a YAML file and where, without quoting the file (it may hold secrets)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem
