"""What every writer can hold (``transforms/writable.py``): the record check at validation
(``unwritable_part``) and the index sinks' JSON conversion (``index_json``) walk a record the
same way, so on JSON data they agree, and a string no writer can encode is found wherever
it sits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inference_enrich.transforms.writable import MAX_NESTING_DEPTH, UnwritableValue, index_json, unwritable_part

TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)  # lone surrogates too
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


def index_problem(value) -> str | None:
    try:
        assert index_json(value) == value  # JSON data passes through unchanged
    except UnwritableValue as problem:
        return str(problem)
    return None


@given(JSON_VALUES)
def test_on_json_data_the_record_check_and_the_index_conversion_find_the_same_problem(value):
    assert unwritable_part(value) == index_problem(value)


def test_nesting_past_the_bound_is_refused_by_both_and_named():
    deep: list = []
    for _ in range(MAX_NESTING_DEPTH):
        deep = [deep]
    record = {"a": deep}
    expected = f"field 'a{'[0]' * (MAX_NESTING_DEPTH - 1)}' is nested deeper than {MAX_NESTING_DEPTH} levels"
    assert unwritable_part(record) == index_problem(record) == expected


def test_a_lone_surrogate_under_a_name_that_is_not_a_string_is_found():
    """A user's dict may have names other than strings; a top-level ``None`` name was taken
    for the skipped text field and its value never checked."""
    assert unwritable_part({None: "v \ud83d"}) == "field 'None' is not valid Unicode: a lone surrogate '\\ud83d' at position 2"
    assert unwritable_part({"text": "t \ud83d", None: "v"}, skip_field="text") is None
