"""R31: one matrix of tool-call shapes, read streamed and not streamed, must give the same calls.

The cases follow the usual parser test matrix (no call, one, parallel calls with distinct ids,
every JSON type, empty arguments, text around the calls, escaped strings, malformed input that must
not raise). Streams are split at every byte boundary of interest by the SSE decoder tests; here
each case is read as a whole stream and as one JSON body."""

from __future__ import annotations

import json

import pytest
from mock_openai import _completion, _normalize, render_stream

from plugdeck.models.openai import SSEDecoder, StreamedTurn, parse_completion

URL = "http://x/v1/chat/completions"
ALL_TYPES = {"s": "text", "i": -3, "f": 2.5, "b": True, "n": None, "a": [1, "two", {"three": 3}], "o": {"k": [False]}}

CASES = {
    "no tool call": {"text": "Just an answer."},
    "one call": {"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Lyon"}}]},
    "parallel calls": {"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Lyon"}},
                                      {"id": "c2", "name": "get_weather", "arguments": {"city": "Oslo"}},
                                      {"id": "c3", "name": "get_time", "arguments": {"zone": "UTC"}}]},
    "every JSON type": {"tool_calls": [{"id": "c1", "name": "store", "arguments": ALL_TYPES}]},
    "empty object": {"tool_calls": [{"id": "c1", "name": "now", "arguments": "{}"}]},
    "empty string": {"tool_calls": [{"id": "c1", "name": "now", "arguments": ""}]},
    "text around the call": {"text": "Let me check that. ", "tool_calls": [
        {"id": "c1", "name": "get_weather", "arguments": {"city": "Rome"}}]},
    "escaped strings": {"tool_calls": [{"id": "c1", "name": "say", "arguments": {
        "text": "quote \" backslash \\ newline \n tab \t unicode \u00e9 \U0001f600 </tool_call>"}}]},
    "malformed": {"tool_calls": [{"id": "c1", "name": "say", "arguments": '{"text": "unterminated'}]},
    "not an object": {"tool_calls": [{"id": "c1", "name": "say", "arguments": '["a", "b"]'}]},
}


def streamed(turn):
    decoder, assembled = SSEDecoder(), StreamedTurn(URL)
    for event in decoder.feed(render_stream(turn)) + decoder.close():
        assembled.add(event)
    return assembled.response()


def whole(turn):
    return parse_completion(json.dumps(_completion(_normalize(turn), "c", "m", 0)).encode(), URL)


def calls(response):
    return [(c.id, c.name, c.arguments, c.error is not None) for c in response.tool_calls]


@pytest.mark.parametrize("case", CASES)
def test_streamed_and_whole_answers_give_the_same_calls(case):
    turn = CASES[case]
    a, b = streamed(turn), whole(turn)  # malformed input must not raise
    assert calls(a) == calls(b) and a.text == b.text and a.finish_reason == b.finish_reason
    ids = [c.id for c in a.tool_calls]
    assert len(set(ids)) == len(ids)
    for call, expected in zip(a.tool_calls, turn.get("tool_calls", [])):
        wanted = expected["arguments"]
        if isinstance(wanted, dict):
            assert call.arguments == wanted and call.error is None
        elif wanted in ("", "{}"):
            assert call.arguments == {} and call.error is None  # no arguments is an empty object
        else:
            assert call.arguments is None and call.error  # told to the model, never guessed
