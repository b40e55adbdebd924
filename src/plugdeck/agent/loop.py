"""The tool loop planner: call the model, run the tools it asked for, feed results back, repeat."""

from __future__ import annotations

import time
from typing import Any

from ..events import ModelCalled, PolicyDecided, TextDelta
from ..models.base import Model, ModelError, ModelResponse, TextChunk, ToolCall
from ..policy.engine import budget_exceeded
from ..tools import Toolset
from .executor import run_tool_calls
from .run import Run


class StepLimit(Exception):
    """The run used all its steps without a final answer."""


class BudgetSpent(Exception):
    """A budget of the policy ran out; the run stops with what it has."""


async def tool_loop(run: Run, model: Model, toolset: Toolset, messages: list[dict[str, Any]], max_steps: int,
                    first_step: int = 1) -> str:
    """Return the model's final answer (before answer checks). `first_step` > 1: a run carried on."""
    for step in range(first_step, max_steps + 1):
        check_model_budget(run)
        run.steps = step
        response = await call_model(run, model, toolset, messages, step)
        response.tool_calls = unique_ids(response.tool_calls)
        messages.append(response.to_message())
        if not response.tool_calls:
            return response.text
        messages.extend(await run_tool_calls(run, toolset, response.tool_calls, step))
    raise StepLimit(f"stopped after {max_steps} steps without a final answer (raise max_steps to allow more)")


def unique_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """A repeated call id would make two results indistinguishable: renamed in the assistant's turn
    itself, so each tool result still answers a call the conversation holds."""
    seen: set[str] = set()
    for call in calls:
        if call.id in seen:
            call.id = f"{call.id}_{len(seen)}"
        seen.add(call.id)
    return calls


def check_model_budget(run: Run) -> None:
    budget = budget_exceeded(run.policy, run, before="model")
    if budget:
        run.emit(PolicyDecided, decision="budget", rule=budget[0], reason=budget[1])
        raise BudgetSpent(budget[1])


async def call_model(
    run: Run, model: Model, toolset: Toolset, messages: list[dict[str, Any]], step: int
) -> ModelResponse:
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
            else:
                response = item
        if response is None:
            raise ModelError(f"model {model.name!r} ended its turn without a response")
    except ModelError as exc:
        run.emit(ModelCalled, step=step, model=model.name, messages=sent,
                 latency=time.perf_counter() - started, ttft=ttft, error=str(exc))
        raise
    served = {"model": response.served_by or model.name, "fallbacks": response.fallbacks}
    if response.prices is not None:  # a fallback chain answered from a deployment with its own prices
        p_in, p_out = response.prices
        served["cost"] = (response.prompt_tokens * p_in + response.completion_tokens * p_out) / 1_000_000
    run.emit(
        ModelCalled,
        step=step,
        **served,
        messages=sent,
        text=response.text,
        tool_calls=[c.to_dict() for c in response.tool_calls],
        finish_reason=response.finish_reason,
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        ttft=ttft,
        latency=time.perf_counter() - started,
    )
    return response
