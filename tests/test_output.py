"""Structured output (plugdeck.agent.output): the instructions, strict parsing, the retry message."""

import json

import pytest
from pydantic import BaseModel, Field

from plugdeck.agent.output import OutputInvalid, instructions, parse, retry_message
from plugdeck.errors import PlugdeckError


class Quote(BaseModel):
    item: str
    price: float = Field(description="in euros", ge=0)
    extras: list[str] = []


def test_instructions_carry_the_schema():
    text = instructions(Quote)
    schema = json.loads(text[text.index("{"):])
    assert schema == Quote.model_json_schema()
    assert "JSON object and nothing else" in text


@pytest.mark.parametrize("text", [
    '{"item": "tea", "price": 2.5}',
    '  {"item": "tea", "price": 2.5}\n',
    '```json\n{"item": "tea", "price": 2.5}\n```',
    '```\n{"item": "tea", "price": 2.5}\n```',
    'Here it is:\n```JSON\n{"item": "tea", "price": 2.5}\n```\nAnything else?',
])
def test_parse_reads_json_with_or_without_a_fence(text):
    assert parse(text, Quote) == Quote(item="tea", price=2.5)


@pytest.mark.parametrize("text, problems", [
    ('{"item": "tea"}', ["price: Field required"]),
    ('{"item": "tea", "price": -1}', ["price: Input should be greater than or equal to 0"]),
    ('{"item": 3, "price": 1, "extras": ["a", 2]}', ["item: Input should be a valid string",
                                                      "extras.1: Input should be a valid string"]),
    ("The tea costs 2.50 euros.", ["not valid JSON (expected value at line 1 column 1)"]),
    ("", ["the answer was empty; a JSON object was expected"]),
    (None, ["the answer was empty; a JSON object was expected"]),
])
def test_an_invalid_answer_says_what_is_wrong(text, problems):
    with pytest.raises(OutputInvalid) as info:
        parse(text, Quote)
    exc = info.value
    assert isinstance(exc, PlugdeckError)
    assert exc.problems == problems and exc.text == (text or "") and exc.output_type is Quote
    assert str(exc) == "the answer is not a valid Quote: " + "; ".join(problems)


def test_the_retry_message_is_a_user_turn_naming_each_problem():
    with pytest.raises(OutputInvalid) as info:
        parse('{"item": 3}', Quote)
    message = retry_message(info.value)
    assert message["role"] == "user"
    assert "- item: Input should be a valid string\n- price: Field required\n" in message["content"]
    assert "Quote" in message["content"] and "only the corrected JSON object" in message["content"]


@pytest.mark.parametrize("output_type", [dict, int, Quote(item="x", price=1), "Quote"])
def test_an_output_type_that_is_not_a_pydantic_model_is_refused(output_type):
    with pytest.raises(TypeError, match="output_type must be a pydantic BaseModel subclass"):
        instructions(output_type)
    with pytest.raises(TypeError, match="output_type must be a pydantic BaseModel subclass"):
        parse("{}", output_type)
