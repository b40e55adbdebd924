"""Broken model output never runs a tool (R30, R31): a stream cut off in the middle of a tool call,
a stream that ends without its finish, arguments that are not JSON, unknown tools and repeated
call ids. Driven through the Agent by a real mock server on loopback, with a spy tool."""

from __future__ import annotations

import json

import pytest
from mock_openai import MockOpenAI

from plugdeck import Agent, tool
from plugdeck.events import ModelCalled, ToolFinished
from plugdeck.models.openai import OpenAIModel

CALLS: list[str] = []
ADD = {"tool_calls": [{"name": "record", "arguments": {"expression": "1+2"}}]}


@tool
def record(expression: str) -> str:
    """Record an expression (a spy: every call that really runs is kept)."""
    CALLS.append(expression)
    return "recorded"


@pytest.fixture(autouse=True)
def clean():
    CALLS.clear()


async def run_against(turns, **options):
    with MockOpenAI(turns) as mock:
        model = OpenAIModel("mock-model", mock.base_url, max_retries=0)
        try:
            run = await Agent(model, tools=[record], **options).run("Record 1+2")
        finally:
            await model.aclose()
        return run, mock


@pytest.mark.parametrize("fault", ["abort_mid", "no_finish", "no_done"])
async def test_a_broken_stream_never_runs_its_half_written_tool_call(fault):
    run, _ = await run_against([{**ADD, "fault": fault}])
    assert CALLS == []
    assert run.status == "error" and "incomplete" in run.error
    (called,) = [e for e in run.events if isinstance(e, ModelCalled)]
    assert called.error and not called.tool_calls
    assert not any(isinstance(e, ToolFinished) for e in run.events)


async def test_unreadable_arguments_are_sent_back_once_and_the_corrected_call_runs_once():
    run, mock = await run_against([{**ADD, "fault": "bad_json_args"}, ADD, "Recorded."])
    assert run.ok and CALLS == ["1+2"]
    first = next(e for e in run.events if isinstance(e, ToolFinished))
    assert first.error["kind"] == "invalid_json"
    # The model read what was wrong before it tried again.
    told = [m for m in mock.requests[1]["messages"] if m["role"] == "tool"]
    assert "invalid_json" in told[0]["content"] and "JSON object" in told[0]["content"]


async def test_a_model_that_never_writes_valid_arguments_runs_nothing_and_stops_at_its_step_limit():
    turns = [{**ADD, "fault": "bad_json_args"}] * 3
    run, _ = await run_against(turns, max_steps=3)
    assert CALLS == [] and run.status == "max_steps"
    errors = [e.error["kind"] for e in run.events if isinstance(e, ToolFinished)]
    assert errors == ["invalid_json"] * 3


async def test_unknown_tools_and_schema_violations_are_structured_errors():
    turns = [{"tool_calls": [{"name": "rm_rf", "arguments": {}},
                             {"name": "record", "arguments": {"expression": 12}}]}, "Sorry."]
    run, mock = await run_against(turns)
    assert CALLS == [] and run.ok
    kinds = sorted(e.error["kind"] for e in run.events if isinstance(e, ToolFinished))
    assert kinds[0] == "invalid_arguments" and kinds[1] == "unknown_tool"
    results = [json.loads(m["content"]) for m in mock.requests[1]["messages"] if m["role"] == "tool"]
    assert all(set(r["error"]) == {"kind", "message"} for r in results)


async def test_repeated_call_ids_get_results_the_model_can_tell_apart():
    same = [{"id": "call_1", "name": "record", "arguments": {"expression": "1"}},
            {"id": "call_1", "name": "record", "arguments": {"expression": "2"}}]
    run, mock = await run_against([{"tool_calls": same}, "Done."])
    assert sorted(CALLS) == ["1", "2"]
    sent = mock.requests[1]["messages"]
    ids = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    asked = [c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert len(set(ids)) == 2 and sorted(ids) == sorted(asked)  # each result answers a call the model made
