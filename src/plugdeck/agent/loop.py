"""The tool loop planner: call the model, run the tools it asked for, feed results back, repeat."""

from __future__ import annotations

import time
from typing import Any

from ..errors import RunStopped
from ..events import ModelCalled, ModelReasoned, PolicyDecided, TextDelta, ToolCallsParsed, ToolFinished
from ..models.base import Model, ModelError, ModelResponse, ReasoningChunk, TextChunk, ToolCall
from ..policy.engine import limit_reached
from ..tools import Toolset
from .admission import Waiting
from .executor import run_tool_calls, tool_message
from .pause import Paused
from .turn import Turn


class StepLimit(RunStopped):
    """The run used all its steps without a final answer."""


class BudgetSpent(RunStopped):
    """A limit of the run ran out; the run stops with what it has."""


async def tool_loop(turn: Turn, model: Model, toolset: Toolset, first_step: int = 1) -> str:
    """Return the model's final answer (before answer checks). Raises Paused when a call of a step waits
    for a person. `first_step` > 1: a run carried on."""
    messages = turn.messages
    for step in range(first_step, turn.max_steps + 1):
        check_model_budget(turn)
        turn.run.usage.steps = step
        response = await call_model(turn, model, toolset, messages, step)
        response.tool_calls = unique_ids(response.tool_calls)
        messages.append(response.to_message())
        if not response.tool_calls:
            return response.text
        outcomes = await run_tool_calls(turn, toolset, response.tool_calls, step)
        end_step(turn, step, response.tool_calls, outcomes)
    raise StepLimit(f"stopped after {turn.max_steps} steps without a final answer (raise max_steps to allow more)")


def end_step(turn: Turn, step: int, calls: list[ToolCall], outcomes: list[ToolFinished | Waiting]) -> None:
    """The step's results go to the model; or, when some call waits for a person, the turn pauses here."""
    waiting = [o.action for o in outcomes if isinstance(o, Waiting)]
    finished = [o for o in outcomes if isinstance(o, ToolFinished)]
    if waiting:
        raise Paused(step, [{"call_id": c.id, "tool": c.name, "arguments": c.arguments} for c in calls],
                     {f.call_id: tool_message(f)["content"] for f in finished}, waiting)
    turn.messages.extend(tool_message(f) for f in finished)


def unique_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """A repeated call id would make two results indistinguishable: renamed in the assistant's turn
    itself, so each tool result still answers a call the conversation holds."""
    seen: set[str] = set()
    for call in calls:
        if call.id in seen:
            call.id = f"{call.id}_{len(seen)}"
        seen.add(call.id)
    return calls


def check_model_budget(turn: Turn) -> None:
    reached = limit_reached(turn.limits, turn.run.usage, before="model")
    if reached:
        turn.run.emit(PolicyDecided, decision="budget", rule=reached[0], reason=reached[1])
        raise BudgetSpent(reached[1])


async def call_model(
    turn: Turn, model: Model, toolset: Toolset, messages: list[dict[str, Any]], step: int
) -> ModelResponse:
    run = turn.run
    started = time.perf_counter()
    ttft = None
    response = None
    sent = list(messages)  # the store keeps what the model saw, not what came later
    try:
        async for item in model.stream(messages, toolset.specs):
            if isinstance(item, TextChunk):
                if ttft is None:
                    ttft = time.perf_counter() - started
                run.emit(TextDelta, step=step, text=item.text)
            elif isinstance(item, ReasoningChunk):
                run.emit(TextDelta, step=step, text=item.text, channel="reasoning")
            else:
                response = item
        if response is None:
            raise ModelError(f"model {model.name!r} ended its turn without a response")
    except ModelError as exc:
        run.emit(ModelCalled, step=step, model=model.name, messages=sent,
                 latency=time.perf_counter() - started, ttft=ttft, error=str(exc))
        raise
    run.emit(
        ModelCalled,
        step=step,
        model=response.served_by or model.name,
        fallbacks=response.fallbacks,
        **turn.charge(response),  # tokens and cost
        messages=sent,
        text=response.text,
        tool_calls=[c.to_dict() for c in response.tool_calls],
        finish_reason=response.finish_reason,
        ttft=ttft,
        latency=time.perf_counter() - started,
    )
    if response.reasoning:
        run.emit(ModelReasoned, step=step, text=response.reasoning)
    if response.tool_format and response.tool_calls:
        outcome = "native" if response.tool_format == "native" else "failed" if response.tool_parse_errors else "recovered"
        run.emit(ToolCallsParsed, step=step, format=response.tool_format, outcome=outcome,
                 calls=len(response.tool_calls), errors=response.tool_parse_errors)
    return response
