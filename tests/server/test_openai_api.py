"""The OpenAI-compatible API against OpenAI's own schemas and the official `openai` client: the agent
answers (calling plugins on the server side), streamed or not, and errors come in OpenAI's shape."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import ORDER, order_turns, sse_data, start_server, stored_run

CALC = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "17.5% of 2340 + 12"}}]}


def mock_setup(mock, plugins=("calculator",)):
    return AgentSetup(model="mock-model", base_url=mock.base_url, plugins=list(plugins))


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed-without-keys", max_retries=0)


def test_models_are_the_configured_agents(env, openai_schema, tmp_path):
    (tmp_path / "plugdeck.toml").write_text('[agents.support]\ndescription = "Arithmetic only"\nplugins = ["calculator"]\n')
    with start_server() as server:
        listed = httpx.get(f"{server.url}/v1/models").json()
        openai_schema("ListModelsResponse").validate(listed)
        assert [m["id"] for m in listed["data"]] == ["plugdeck", "support"]
        client = client_for(server)
        assert [m.id for m in client.models.list()] == ["plugdeck", "support"]
        assert client.models.retrieve("support").owned_by == "plugdeck"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4o")


def test_non_streamed_answer_with_a_tool_call_on_the_server(env, openai_schema):
    with MockOpenAI([CALC, "That makes 421.5."]) as mock, start_server(mock_setup(mock)) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json={
            "model": "plugdeck", "messages": [{"role": "user", "content": "What is 17.5% of 2,340, plus 12?"}]})
        assert response.status_code == 200
        data = response.json()
        openai_schema("CreateChatCompletionResponse").validate(data)
        assert data["object"] == "chat.completion" and data["model"] == "plugdeck"
        assert data["choices"][0]["message"]["content"] == "That makes 421.5."
        assert data["choices"][0]["finish_reason"] == "stop"
        assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"] > 0
        step = data["plugdeck"]["steps"][0]
        assert step["tool"] == "calculator.calculate" and step["result"]["result"] == "421.5"
        assert response.headers["x-plugdeck-run-id"] == data["plugdeck"]["run_id"] == data["id"].removeprefix("chatcmpl-")
        # The model behind the agent got the tool's result; the client never had to run a tool.
        assert json.loads(mock.requests[1]["messages"][-1]["content"])["result"] == "421.5"
        assert stored_run(env, data["plugdeck"]["run_id"], "ok")["tool_calls"] == 1


def test_streamed_answer_validates_chunk_by_chunk(env, openai_schema):
    answer = "The total is 421.5, which is 17.5 percent of 2,340 plus twelve."
    with MockOpenAI([CALC, answer]) as mock, start_server(mock_setup(mock)) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
            "model": "plugdeck", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "What is 17.5% of 2,340, plus 12?"}]})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        payloads = sse_data(response.text)
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        schema = openai_schema("CreateChatCompletionStreamResponse")
        for chunk in chunks:
            schema.validate(chunk)
        assert len({c["id"] for c in chunks}) == 1 and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert "".join(t for t in texts if t) == answer
        assert sum(1 for t in texts if t) > 5  # streamed in pieces, as the model wrote it
        finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        assert [c["choices"][0]["finish_reason"] for c in finishing] == ["stop"]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
        assert all(c["usage"] is None for c in chunks[:-1])
        steps = [c["plugdeck"]["type"] for c in chunks if "plugdeck" in c and "type" in c["plugdeck"]]
        assert steps.index("tool_started") < steps.index("tool_finished") < steps.index("run_finished")


def test_the_official_client_streams_and_keeps_history(env):
    with MockOpenAI(["Hello Ada!", "Your name is Ada."]) as mock, start_server(mock_setup(mock)) as server:
        client = client_for(server)
        first = client.chat.completions.create(model="plugdeck", messages=[
            {"role": "system", "content": "You are terse."}, {"role": "user", "content": "I am Ada."}])
        assert first.choices[0].message.content == "Hello Ada!"
        stream = client.chat.completions.create(model="plugdeck", stream=True, messages=[
            {"role": "user", "content": "I am Ada."}, {"role": "assistant", "content": "Hello Ada!"},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}])
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "Your name is Ada."
        sent = [(m["role"], m["content"]) for m in mock.requests[1]["messages"] if m["role"] != "system"]
        assert sent == [("user", "I am Ada."), ("assistant", "Hello Ada!"), ("user", "What is my name?")]
        # The client's system message is added below the agent's own system prompt, never in its place.
        system = mock.requests[0]["messages"][0]
        assert system["role"] == "system" and "You are terse." in system["content"]
        assert system["content"].index("You are terse.") > 0
        assert "You are terse." not in json.dumps(mock.requests[1])  # the second request sent none


def test_a_pending_write_action_is_announced_with_where_to_approve_it(env, pizzeria):
    with MockOpenAI(order_turns()) as mock, start_server(mock_setup(mock, ["pizzeria"])) as server:
        client = client_for(server)
        stream = client.chat.completions.create(model="plugdeck", stream=True, messages=[
            {"role": "user", "content": "Order two margheritas for 19:00, name Ada"}])
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        run_id = chunks[0].id.removeprefix("chatcmpl-")
        assert "needs your approval" in text and f"{server.url}/runs/{run_id}" in text
        pending = chunks[-1].model_extra["plugdeck"]["pending"]
        assert pending[0]["tool"] == "pizzeria.place_order" and pending[0]["arguments"] == ORDER
        assert pending[0]["id"] in text and chunks[-1].choices[0].finish_reason == "stop"
        assert len(mock.requests) == 1  # nothing ordered, the model not called again: the run waits
        approved = httpx.post(f"{server.url}/api/runs/{run_id}/actions/{pending[0]['id']}", json={"approve": True},
                              timeout=30).json()
        assert approved["status"] == "ok" and approved["answer"] == "Your order is placed."
        assert httpx.get(f"{pizzeria}/orders/1001").json()["total"] == 17.0


def test_errors_come_in_openai_shape(env, openai_schema):
    with MockOpenAI([]) as mock, start_server(mock_setup(mock)) as server:
        url = f"{server.url}/v1/chat/completions"
        error = openai_schema("ErrorResponse")
        cases = [
            ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
            ({"model": "plugdeck", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_messages"),
            ({"model": "plugdeck", "messages": []}, 400, "invalid_request"),
            ({"model": "plugdeck", "messages": [{"role": "user", "content": "hi"}],
              "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "unsupported_parameter"),
            ({"messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_request"),
        ]
        for body, status, code in cases:
            response = httpx.post(url, json=body)
            assert response.status_code == status, (body, response.text)
            error.validate(response.json())
            assert response.json()["error"]["code"] == code
        broken = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
        client = client_for(server)
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.BadRequestError, match="last message must be the user's question"):
            client.chat.completions.create(model="plugdeck", messages=[{"role": "system", "content": "hi"}])


def test_a_model_that_fails_is_a_server_error_not_a_silent_answer(env, openai_schema):
    # The mock's queue is empty: it answers 500 to everything, and the agent's model gives up.
    with MockOpenAI([]) as mock, start_server(mock_setup(mock)) as server:
        server.state.agents.get("plugdeck", None).model.max_retries = 0
        response = httpx.post(f"{server.url}/v1/chat/completions",
                              json={"model": "plugdeck", "messages": [{"role": "user", "content": "2+2?"}]})
        assert response.status_code == 502
        openai_schema("ErrorResponse").validate(response.json())
        assert "HTTP 500" in response.json()["error"]["message"] and response.json()["error"]["code"] == "run_error"
        with pytest.raises(openai.APIError, match="the run failed"):
            list(client_for(server).chat.completions.create(
                model="plugdeck", stream=True, messages=[{"role": "user", "content": "2+2?"}]))
