"""The `openai` backend and the endpoint probe, against a real mock server on loopback."""

from __future__ import annotations

import socket
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mock_openai import MockOpenAI, render_stream

from plugdeck.models.base import ModelError, ModelResponse, TextChunk
from plugdeck.models.openai import OpenAIModel, SSEDecoder, StreamedTurn
from plugdeck.retry import retry_after
from plugdeck.models.probe import check_endpoint
from plugdeck.tools import ToolSpec

QUESTION = [{"role": "user", "content": "What is one plus two?"}]
CALC = ToolSpec("calc", "Evaluate an arithmetic expression.",
                {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]})


@pytest.fixture
def mock():
    with MockOpenAI() as server:
        yield server


@pytest.fixture
async def make_model(mock):
    """OpenAIModel factory bound to the mock, with fast backoff; closed after the test."""
    made = []

    def make(**options) -> OpenAIModel:
        model = OpenAIModel("mock-model", options.pop("base_url", mock.base_url), **options)
        model.backoff_base = 0.01
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()


async def collect(model: OpenAIModel, tools=(CALC,)) -> tuple[list[str], ModelResponse | None]:
    chunks, response = [], None
    async for item in model.stream(QUESTION, list(tools)):
        if isinstance(item, TextChunk):
            chunks.append(item.text)
        else:
            response = item
    return chunks, response


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_plain_text(mock, make_model, stream):
    mock.add("One plus two is three.")
    chunks, response = await collect(make_model(stream=stream), tools=())
    assert "".join(chunks) == response.text == "One plus two is three."
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert len(chunks) == (5 if stream else 1)  # streamed word by word
    sent = mock.requests[0]
    assert sent["model"] == "mock-model" and sent["messages"] == QUESTION and sent["stream"] is stream
    assert "tools" not in sent
    assert ("stream_options" in sent) is stream


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_call(mock, make_model, stream):
    call = {"id": "call_a", "name": "calc", "arguments": {"expression": "1+2"}}
    mock.add({"text": "Let me compute.", "tool_calls": [call]})
    _, response = await collect(make_model(stream=stream))
    assert response.text == "Let me compute." and response.finish_reason == "tool_calls"
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_a", "calc", {"expression": "1+2"})
    assert call.error is None and not call.repaired
    assert mock.requests[0]["tools"] == [CALC.openai()]


@pytest.mark.parametrize("stream", [True, False])
async def test_several_tool_calls_in_one_turn(mock, make_model, stream):
    mock.add({"tool_calls": [{"name": "calc", "arguments": {"expression": f"{n}*{n}"}} for n in range(3)]})
    _, response = await collect(make_model(stream=stream))
    assert [c.arguments["expression"] for c in response.tool_calls] == ["0*0", "1*1", "2*2"]
    assert len({c.id for c in response.tool_calls}) == 3


@pytest.mark.parametrize("stream", [True, False])
async def test_usage_is_reported(mock, make_model, stream):
    mock.add("three words here", {"text": "x", "usage": {"prompt_tokens": 40, "completion_tokens": 7}})
    model = make_model(stream=stream)
    _, counted = await collect(model)
    _, given = await collect(model)
    assert (counted.prompt_tokens, counted.completion_tokens) == (5, 3)  # the mock counts words
    assert (given.prompt_tokens, given.completion_tokens) == (40, 7)


async def test_api_key_and_headers_are_sent(mock, make_model):
    mock.add("hi")
    await collect(make_model(api_key="sk-test", headers={"X-Team": "blue"}, temperature=0.2))
    headers = {k.lower(): v for k, v in mock.headers[0].items()}
    assert headers["authorization"] == "Bearer sk-test" and headers["x-team"] == "blue"
    assert mock.requests[0]["temperature"] == 0.2


async def test_server_without_stream_options_is_asked_again_and_remembered(make_model):
    with MockOpenAI(["first", "second"], supports_stream_options=False) as server:
        model = make_model(base_url=server.base_url)
        assert (await collect(model))[1].text == "first"
        assert (await collect(model))[1].text == "second"
    assert ["stream_options" in body for body in server.requests] == [True, False, False]


async def test_bad_json_arguments_are_reported_not_guessed(mock, make_model):
    mock.add({"tool_calls": [{"name": "calc", "arguments": {"expression": "1+2"}}], "fault": "bad_json_args"})
    _, response = await collect(make_model())
    [call] = response.tool_calls
    assert call.arguments is None and call.raw_arguments == '{"expression": "1+'
    assert "not valid JSON" in call.error


async def test_repairable_arguments_are_repaired(mock, make_model):
    mock.add({"tool_calls": [{"name": "calc", "arguments": '{"expression": "1+2",}'}]})
    _, response = await collect(make_model())
    [call] = response.tool_calls
    assert call.arguments == {"expression": "1+2"} and call.repaired and call.error is None


async def test_tool_call_cut_by_the_token_limit_is_not_completed(mock, make_model):
    mock.add({"tool_calls": [{"name": "calc", "arguments": '{"expression": "1000'}], "finish_reason": "length"})
    _, response = await collect(make_model())
    [call] = response.tool_calls
    assert call.arguments is None and "ran out of output tokens" in call.error


def test_reasoning_deltas_and_null_content_are_accepted():
    turn = StreamedTurn("http://x/v1/chat/completions")
    for data in ['{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"hmm"}}]}',
                 '{"choices":[{"index":0,"delta":{"content":"3"},"finish_reason":"stop"}]}', "[DONE]"]:
        turn.add(data)
    assert turn.response().text == "3"


# ---- retries and deadlines (R28) -----------------------------------------------------------------


async def test_429_waits_for_retry_after_then_succeeds(make_model):
    with MockOpenAI([{"fault": "429"}, "ok"], retry_after=1) as server:
        started = time.monotonic()
        _, response = await collect(make_model(base_url=server.base_url))
        elapsed = time.monotonic() - started
    assert response.text == "ok" and len(server.requests) == 2
    assert elapsed >= 1.0  # a lower bound: the server's wait was honoured


async def test_retry_after_past_the_deadline_fails_at_once(make_model):
    with MockOpenAI([{"fault": "429", "retry_after": 30}, "ok"]) as server:
        started = time.monotonic()
        with pytest.raises(ModelError, match="would pass the 5s deadline"):
            await collect(make_model(base_url=server.base_url, deadline=5))
    assert time.monotonic() - started < 5 and len(server.requests) == 1


async def test_500_always_is_retried_max_retries_times(make_model):
    with MockOpenAI(default={"fault": "500", "message": "the GPU caught fire"}) as server:
        with pytest.raises(ModelError) as caught:
            await collect(make_model(base_url=server.base_url, max_retries=2))
    assert len(server.requests) == 3
    message = str(caught.value)
    assert "HTTP 500" in message and "the GPU caught fire" in message and "3 attempts" in message
    assert server.base_url in message


async def test_other_4xx_is_not_retried_and_shows_the_server_message(mock, make_model):
    mock.add({"fault": "404", "message": "The model `gpt-9` does not exist"})
    with pytest.raises(ModelError) as caught:
        await collect(make_model())
    assert len(mock.requests) == 1
    message = str(caught.value)
    assert "HTTP 404" in message and "does not exist" in message and "--base-url" in message


async def test_x_should_retry_overrides_the_status(mock, make_model):
    mock.add({"fault": "400", "headers": {"x-should-retry": "true"}}, "ok")
    _, response = await collect(make_model())
    assert response.text == "ok" and len(mock.requests) == 2


async def test_hanging_server_fails_within_the_deadline(mock, make_model):
    mock.add({"fault": "hang"})
    started = time.monotonic()
    with pytest.raises(ModelError, match="1s deadline"):
        await collect(make_model(deadline=1))
    assert time.monotonic() - started < 1.5


async def test_connection_refused(make_model):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError) as caught:
        await collect(make_model(base_url=url, max_retries=1))
    message = str(caught.value)
    assert message.startswith(f"could not connect to {url}: connection refused")
    assert "2 attempts" in message and "Is the server running?" in message


async def test_empty_mock_queue_is_a_clear_500(mock, make_model):
    with pytest.raises(ModelError, match="no scripted turn left"):
        await collect(make_model(max_retries=0))


async def test_api_key_never_appears_in_errors_or_repr(mock, make_model):
    key = "sk-secret-123456"
    mock.add({"fault": "401", "message": f"Incorrect API key provided: {key}"})
    model = make_model(api_key=key)
    with pytest.raises(ModelError) as caught:
        await collect(model)
    assert "HTTP 401" in str(caught.value) and "API key" in str(caught.value)
    refused = make_model(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key=key, max_retries=0)
    with pytest.raises(ModelError) as refused_error:
        await collect(refused)
    for text in (str(caught.value), str(refused_error.value), repr(model)):
        assert key not in text


# ---- stream integrity (R30) ----------------------------------------------------------------------


async def test_abort_mid_stream_is_an_error_and_returns_no_tool_calls(mock, make_model):
    mock.add({"text": "Working on it now.", "tool_calls": [{"name": "calc", "arguments": {"expression": "12345*678"}}],
              "fault": "abort_mid"})
    items = []
    with pytest.raises(ModelError, match="cut off"):
        async for item in make_model().stream(QUESTION, [CALC]):
            items.append(item)
    assert items and all(isinstance(item, TextChunk) for item in items)  # text came, no response did
    assert len(mock.requests) == 1  # never retried once text was handed on


async def test_abort_mid_non_streamed_is_an_error(mock, make_model):
    mock.add({"text": "Working on it.", "fault": "abort_mid"})
    with pytest.raises(ModelError, match="cut off"):
        await collect(make_model(stream=False))


@pytest.mark.parametrize("fault, missing", [("no_done", r"\(no \[DONE\]\)"), ("no_finish", "no finish_reason and no")])
async def test_stream_that_ends_early_is_an_error(mock, make_model, fault, missing):
    mock.add({"text": "Three.", "tool_calls": [{"name": "calc", "arguments": {"expression": "1+2"}}], "fault": fault})
    with pytest.raises(ModelError, match=missing):
        await collect(make_model())


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=10_000), max_size=40), crlf=st.booleans())
def test_any_split_of_a_stream_gives_the_same_response(cuts, crlf):
    turn = {"text": "Naïve café: 3 € 🙂 done.", "usage": {"prompt_tokens": 9, "completion_tokens": 4},
            "tool_calls": [{"id": "c1", "name": "calc", "arguments": {"expression": "1+2", "note": "ü€"}},
                           {"id": "c2", "name": "calc", "arguments": '{"expression": "3*4",}'}]}
    data = b": keep-alive\n\n" + render_stream(turn)  # a comment, as proxies send to keep streams open
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    whole = parse(data, [])
    assert whole.text == turn["text"] and whole.prompt_tokens == 9 and whole.tool_calls[1].repaired
    assert parse(data, sorted({c % len(data) for c in cuts})) == whole


def parse(data: bytes, cuts: list[int]) -> ModelResponse:
    decoder, turn = SSEDecoder(), StreamedTurn("http://x/v1/chat/completions")
    for start, end in zip([0, *cuts], [*cuts, len(data)]):
        for event in decoder.feed(data[start:end]):
            turn.add(event)
    for event in decoder.close():
        turn.add(event)
    return turn.response()


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_forms(headers, expected):
    assert retry_after(httpx.Headers(headers)) == expected


def test_retry_after_as_http_date():
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after(httpx.Headers({"retry-after": when})) <= 30


# ---- the probe -----------------------------------------------------------------------------------


async def test_probe_healthy_endpoint():
    with MockOpenAI(default="OK", models=["mock-a", "mock-b"]) as server:
        result = await check_endpoint(server.base_url)
    assert result["reachable"] and result["models"] == ["mock-a", "mock-b"] and result["model"] == "mock-a"
    assert result["tools"] is True and result["streaming"] is True and result["error"] is None
    assert result["latency"] >= 0
    first = server.requests[0]
    assert first["tools"][0]["function"]["name"] == "get_time" and first["tool_choice"] == "auto"


async def test_probe_endpoint_without_tools():
    with MockOpenAI(default="OK", supports_tools=False) as server:
        result = await check_endpoint(server.base_url, model="mock-model")
    assert result["reachable"] and result["tools"] is False and result["streaming"] is True
    assert "does not accept tools" in result["error"]


async def test_probe_dead_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = await check_endpoint(url, timeout=2)
    assert result["reachable"] is False and result["tools"] is None and result["streaming"] is None
    assert "connection refused" in result["error"]
