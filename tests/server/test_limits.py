"""R08 at the server: a key's run limit answers the next request 429 while its runs are going, and a
run that keeps calling tools stops at exactly its step limit with the reason recorded."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from mock_openai import MockOpenAI

from plugdeck.assemble import AgentSetup
from serverkit import plugdeck, start_server, stored_run, wait_for

ASK = {"model": "plugdeck", "messages": [{"role": "user", "content": "What is 6*7?"}]}


def test_a_key_over_its_concurrent_runs_gets_429_until_one_ends(env):
    made = plugdeck(env, "keys", "create", "--plugins", "calculator", "--concurrent", "1")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with MockOpenAI([{"fault": "hang"}], default="42") as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])) as server:
        url = f"{server.url}/v1/chat/completions"
        first = threading.Thread(target=lambda: httpx.post(url, json=ASK, headers=headers, timeout=60))
        first.start()
        wait_for(lambda: len(mock.requests) == 1)  # the first run waits on the model
        second = httpx.post(url, json=ASK, headers=headers, timeout=30)
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert second.json()["error"]["code"] == "too_many_runs"
        for live in server.state.live.live():
            live.cancel()
        first.join(30)
        wait_for(lambda: not [r for r in server.state.live.live() if r.status == "running"])
        third = httpx.post(url, json=ASK, headers=headers, timeout=30)
        assert third.status_code == 200 and third.json()["choices"][0]["message"]["content"] == "42"


def test_a_model_that_never_stops_calling_tools_ends_at_its_step_limit(env):
    Path("plugdeck.toml").write_text("max_steps = 3\n")  # the env fixture runs the test in its own folder
    call = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "1+1"}}]}
    with MockOpenAI(default=call) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=ASK, timeout=30)
    assert response.status_code == 200 and response.json()["choices"][0]["finish_reason"] == "length"
    run = stored_run(env, response.headers["x-plugdeck-run-id"], "max_steps")
    assert run and "3 steps" in run["error"]
    assert len(mock.requests) == 3
