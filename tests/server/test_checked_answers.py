"""What a person sees is what the answer checks passed, on every surface of the server (issue 11, item 14).

The policy refuses answers with untraced numbers (`numbers = "refuse"`); the mock model answers with
one it made up. The draft it streamed must reach no client: not the OpenAI API (streamed or not), not
the REST API's SSE (live or replayed from the store), not `plugdeck mcp serve`. The run's record keeps
it, for review. (The web page: tests/server/test_page.py; the terminal: tests/cli.)
"""

from __future__ import annotations

import json
import sys

import httpx

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import PLUGDECK, sse_data, sse_events, start_server, stored_run

DRAFT = "The total for your order is 455.22 euros, tax included."
REFUSED = "I can't give this answer"
QUESTION = "What is my total?"


def refuse_numbers(tmp_path) -> None:
    (tmp_path / "plugdeck.toml").write_text('[policy.answers]\nnumbers = "refuse"\n')


def setup(mock) -> AgentSetup:
    return AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])


def test_openai_api_answers_with_the_checked_text_streamed_or_not(env, tmp_path):
    refuse_numbers(tmp_path)
    with MockOpenAI([DRAFT, DRAFT]) as mock, start_server(setup(mock)) as server:
        plain = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
            "model": "plugdeck", "messages": [{"role": "user", "content": QUESTION}]})
        streamed = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
            "model": "plugdeck", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
    assert plain.status_code == 200 and streamed.status_code == 200
    content = plain.json()["choices"][0]["message"]["content"]
    assert content.startswith(REFUSED) and "455.22 euros" not in plain.text
    chunks = [json.loads(p) for p in sse_data(streamed.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith(REFUSED)
    assert "455.22 euros" not in streamed.text  # neither as content nor in the `plugdeck` step field
    # The record keeps what the model wrote and what the check made of it.
    run = stored_run(env, chunks[0]["id"].removeprefix("chatcmpl-"), "ok")
    checked = next(e for e in run["events"] if e["type"] == "answer_checked")
    assert checked["original"] == DRAFT and checked["answer"].startswith(REFUSED)


def test_rest_sse_live_and_replayed_carries_only_the_checked_answer(env, tmp_path, client):
    refuse_numbers(tmp_path)
    with MockOpenAI([DRAFT]) as mock, start_server(setup(mock)) as server:
        live = client.post(f"{server.url}/api/runs", json={"message": QUESTION},
                           headers={"Accept": "text/event-stream"})
        run_id = live.headers["x-plugdeck-run-id"]
        stored_run(env, run_id, "ok")
        replayed = client.get(f"{server.url}/api/runs/{run_id}/events", headers={"Accept": "text/event-stream"})
        record = client.get(f"{server.url}/api/runs/{run_id}").json()
    for body in (live.text, replayed.text):
        events = sse_events(body)
        assert dict(events)["answer"]["text"].startswith(REFUSED)
        assert events[-1][0] == "settled" and events[-1][1]["answer"].startswith(REFUSED)
        assert "455.22 euros" not in body
    assert any(e["type"] == "answer_checked" and e["original"] == DRAFT for e in record["events"])


async def test_mcp_ask_returns_the_checked_answer(env, tmp_path):
    from mcp import Client, StdioServerParameters

    refuse_numbers(tmp_path)
    with MockOpenAI([DRAFT]) as mock:
        params = StdioServerParameters(command=sys.executable, args=[*PLUGDECK[1:], "mcp", "serve", "--base-url",
                                                                     mock.base_url, "--model", "mock-model"],
                                       env=env, cwd=str(tmp_path))
        async with Client(params, cache=None) as mcp:
            result = await mcp.call_tool("ask", {"question": QUESTION})
    text = result.content[0].text
    assert text.startswith(REFUSED) and "455.22 euros" not in text
