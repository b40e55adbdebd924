"""The tool loop with the scripted model: concurrency, errors back to the model, limits, cancellation."""

import asyncio

import pytest

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.events import ModelCalled, RunFinished, TextDelta, ToolFinished, ToolStarted


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


@tool
async def slow_echo(text: str, seconds: float = 0.05) -> str:
    """Echo text after a pause."""
    await asyncio.sleep(seconds)
    return text


@tool
def boom() -> str:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


async def test_parallel_calls_run_concurrently_and_results_go_back_in_order():
    model = ScriptedModel([{"tool_calls": [call("slow_echo", text="a", seconds=0.2), call("slow_echo", text="b", seconds=0.01)]},
                           "a and b"])
    run = await Agent(model, tools=[slow_echo]).run("echo")
    assert run.status == "ok" and run.answer == "a and b"
    kinds = [(e.type, getattr(e, "arguments", {}).get("text") if isinstance(e, (ToolStarted, ToolFinished)) else None)
             for e in run.events if isinstance(e, (ToolStarted, ToolFinished))]
    # Both started before either finished, and the short one finished first.
    assert kinds == [("tool_started", "a"), ("tool_started", "b"), ("tool_finished", "b"), ("tool_finished", "a")]
    second_prompt = model.calls[1]
    tool_messages = [m for m in second_prompt if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["a", "b"]  # in the order the model asked


async def test_errors_go_back_to_the_model_and_the_run_continues():
    model = ScriptedModel([
        {"tool_calls": [call("nope"), call("slow_echo", text=5), call("boom"),
                        {"name": "slow_echo", "arguments": '{"text": "x"'},  # repairable: missing brace
                        {"name": "slow_echo", "arguments": '{"text": "unterminated'}]},
        "done",
    ])
    run = await Agent(model, tools=[slow_echo, boom]).run("try things")
    assert run.status == "ok" and run.answer == "done"
    results = {e.call_id: e for e in run.tool_results}
    assert results["call_1_0"].error["kind"] == "unknown_tool"
    assert "slow_echo" in results["call_1_0"].error["message"]  # lists the real tools
    assert results["call_1_1"].error["kind"] == "invalid_arguments"
    assert results["call_1_2"].error == {"kind": "tool_exception", "message": "RuntimeError: the disk is on fire"}
    assert results["call_1_3"].error is None and results["call_1_3"].result == "x"
    assert results["call_1_4"].error["kind"] == "invalid_json"
    tool_messages = [m for m in model.calls[1] if m["role"] == "tool"]
    assert '"kind": "unknown_tool"' in tool_messages[0]["content"]


async def test_tool_timeout_is_an_error_not_a_hang():
    @tool(timeout=0.05)
    async def stuck() -> str:
        """Never returns."""
        await asyncio.sleep(10)

    run = await Agent(ScriptedModel([{"tool_calls": [call("stuck")]}, "gave up"]), tools=[stuck]).run("go")
    assert run.status == "ok"
    assert run.tool_results[0].error["kind"] == "timeout"


async def test_step_limit_stops_cleanly():
    loop_forever = [{"tool_calls": [call("slow_echo", text="again", seconds=0)]}] * 5
    run = await Agent(ScriptedModel(loop_forever), tools=[slow_echo], max_steps=3).run("loop")
    assert run.status == "max_steps" and "3 steps" in run.error
    assert run.usage.model_calls == 3 and run.usage.tool_calls == 3
    assert isinstance(run.events[-1], RunFinished)


async def test_deadline_ends_the_run_and_is_recorded():
    model = ScriptedModel([{"tool_calls": [call("slow_echo", text="x", seconds=5)]}, "never"])
    run = await Agent(model, tools=[slow_echo], deadline=0.2).run("slow")
    assert run.status == "deadline" and "0.2 s deadline" in run.error


async def test_model_error_is_recorded_as_a_failed_run():
    run = await Agent(ScriptedModel([]), tools=[slow_echo]).run("hello")
    assert run.status == "error" and "no turn left" in run.error
    called = [e for e in run.events if isinstance(e, ModelCalled)]
    assert called and called[0].error


async def test_stream_yields_events_live_and_leaving_early_cancels_tools():
    cancelled = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Waits."""
        try:
            await asyncio.sleep(30)
        finally:
            cancelled.set()

    recorded = []
    agent = Agent(ScriptedModel([{"text": "let me check", "tool_calls": [call("wait_forever")]}]),
                  tools=[wait_forever], sinks=[recorded.append])
    async for event in agent.stream("q"):
        if isinstance(event, ToolStarted):
            break
    await asyncio.wait_for(cancelled.wait(), 2)
    assert isinstance(recorded[-1], RunFinished) and recorded[-1].status == "cancelled"
    assert any(isinstance(e, TextDelta) and e.text == "let me check" for e in recorded)


async def test_history_is_passed_and_messages_returned():
    model = ScriptedModel(["first", "second"])
    agent = Agent(model, system_prompt="be brief")
    first = await agent.run("one")
    second = await agent.run("two", history=first.messages)
    assert [m["role"] for m in model.calls[1]] == ["system", "user", "assistant", "user"]
    assert second.messages[-1] == {"role": "assistant", "content": "second"}
    assert all(m["role"] != "system" for m in second.messages)


def test_run_sync_works_outside_an_event_loop():
    run = Agent(ScriptedModel(["hi"])).run_sync("hello")
    assert run.ok and run.answer == "hi"
