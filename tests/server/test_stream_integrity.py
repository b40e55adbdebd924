"""R30 through the server: when the model's stream is cut off mid tool call, the client of the
OpenAI-compatible API gets an error event (never a silently short answer or a [DONE]), no tool
runs, and the run is stored as failed with the reason."""

from __future__ import annotations

import json

import httpx
import pytest
from mock_openai import MockOpenAI

from plugdeck.assemble import AgentSetup
from serverkit import start_server, stored_run

CALC = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "1+2"}}]}
ASK = {"model": "plugdeck", "stream": True, "messages": [{"role": "user", "content": "What is 1+2?"}]}


@pytest.mark.parametrize("fault", ["abort_mid", "no_finish"])
def test_a_cut_off_model_stream_reaches_the_client_as_an_error(env, fault):
    with MockOpenAI([{**CALC, "fault": fault}]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=ASK, timeout=30)
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert "[DONE]" not in data
    error = json.loads(data[-1])["error"]
    assert error["code"] == "run_error" and "incomplete" in error["message"]
    run_id = response.headers["x-plugdeck-run-id"]
    stored = stored_run(env, run_id, "error")
    assert stored and "incomplete" in stored["error"]
    assert not [e for e in stored["events"] if e["type"] in ("tool_started", "tool_finished")]

