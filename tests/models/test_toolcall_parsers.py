"""Tool-call arguments: repaired only when the repair is unambiguous."""

import json

import pytest
from hypothesis import given, strategies as st

from plugdeck.models.toolcall_parsers import ArgumentsError, parse_arguments


@pytest.mark.parametrize("raw, expected", [
    ('{"a": 1}', ({"a": 1}, False)),
    ("", ({}, False)),
    ('  {"a": 1}\n', ({"a": 1}, False)),
    ('```json\n{"a": 1}\n```', ({"a": 1}, True)),
    ('{"a": 1,}', ({"a": 1}, True)),
    ('{"a": [1, 2,], }', ({"a": [1, 2]}, True)),
    ('{"a": True, "b": None}', ({"a": True, "b": None}, True)),
    ('{"a": {"b": 1}', ({"a": {"b": 1}}, True)),
    ('{"text": "x, }"', ({"text": "x, }"}, True)),  # brackets inside strings are not touched
    ({"already": "parsed"}, ({"already": "parsed"}, False)),
])
def test_unambiguous_repairs(raw, expected):
    assert parse_arguments(raw) == expected


@pytest.mark.parametrize("raw, reason", [
    ('{"expression": "1+', "cannot be repaired"),  # unterminated string: where did it end?
    ('{"a": ', "cannot be repaired"),
    ('{"a": 1}{"b": 2}', "cannot be repaired"),
    ('{"a": 1]', "cannot be repaired"),
    ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
    ("{'a': 1}", "cannot be repaired"),
])
def test_ambiguous_input_is_refused(raw, reason):
    with pytest.raises(ArgumentsError, match=reason):
        parse_arguments(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_valid_json_is_never_changed(arguments):
    assert parse_arguments(json.dumps(arguments)) == (arguments, False)


@given(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=4), st.integers(1, 3))
def test_missing_closing_brackets_are_restored(arguments, cut):
    text = json.dumps(arguments)
    cut = min(cut, len(text) - len(text.rstrip("}]")))  # only closing brackets go missing
    assert parse_arguments(text[:-cut]) == (arguments, True)
