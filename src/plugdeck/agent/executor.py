"""Run the tool calls of one model turn: validated, concurrently, each within its timeout.

Whatever goes wrong inside a call (unknown tool, bad arguments, an exception, a timeout) becomes
a structured error in the tool's result message, so the model can correct itself and the run
goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..events import PolicyDecided, ToolFinished, ToolStarted
from ..models.base import ToolCall
from ..policy.engine import budget_exceeded, decide
from ..tools import Tool, ToolError, Toolset
from .confirm import PendingAction, action_id, summarize, untrusted_arguments
from .run import Run

RESULT_BUDGET = 20_000  # characters of one tool result sent back to the model


async def run_tool_calls(run: Run, toolset: Toolset, calls: list[ToolCall], step: int) -> list[dict[str, Any]]:
    """Execute the calls; return the tool messages in the order the model asked for them."""
    seen: set[str] = set()
    jobs = []
    for call in calls:
        if call.id in seen:  # a repeated id would make two results indistinguishable to the model
            call = ToolCall(f"{call.id}_{len(seen)}", call.name, call.arguments, call.raw_arguments, call.error)
        seen.add(call.id)
        jobs.append(run_tool_call(run, toolset, call, step))
    finished = [await jobs[0]] if len(jobs) == 1 else await asyncio.gather(*jobs)
    return [tool_message(event) for event in finished]


def tool_message(finished: ToolFinished) -> dict[str, Any]:
    """A finished call as the model reads it: the result, or the error it can correct."""
    content = to_content({"error": finished.error} if finished.error else finished.result)
    return {"role": "tool", "tool_call_id": finished.call_id, "content": content}


async def run_tool_call(run: Run, toolset: Toolset, call: ToolCall, step: int) -> ToolFinished:
    """One call through validation, the policy and confirmation; never raises for the tool's faults."""
    tool = toolset.resolve(call.name)
    name = tool.qualified_name if tool else call.name
    arguments = call.arguments if call.arguments is not None else call.raw_arguments
    run.emit(ToolStarted, step=step, call_id=call.id, tool=name, arguments=arguments)
    started = time.perf_counter()
    result: Any = None
    error: dict[str, str] | None = None
    try:
        result = await _invoke(tool, call, toolset, run)
    except ToolError as exc:
        error = exc.to_dict()
    except Exception as exc:  # a crash inside the tool is the tool's problem, not the run's
        error = {"kind": "tool_exception", "message": f"{type(exc).__name__}: {exc}"}
    latency = time.perf_counter() - started
    return run.emit(
        ToolFinished,
        step=step,
        call_id=call.id,
        tool=name,
        arguments=arguments,
        result=result,
        error=error,
        latency=latency,
        source=(tool.plugin or "local") if tool else "",
        untrusted=bool(tool and tool.untrusted),  # an outside service's error text is outside data too
    )


async def _invoke(tool: Tool | None, call: ToolCall, toolset: Toolset, run: Run) -> Any:
    if tool is None:
        known = ", ".join(spec.name for spec in toolset.specs) or "none"
        raise ToolError(f"there is no tool named {call.name!r}; the tools are: {known}", "unknown_tool")
    if call.error:
        raise ToolError(f"{call.error}. Send the call again with the arguments as one JSON object.", "invalid_json")
    kwargs = tool.validate(call.arguments)
    approved_action = await _admit(run, tool, call)
    try:
        return await asyncio.wait_for(tool.invoke(kwargs, approved_action), tool.timeout)
    except asyncio.TimeoutError:
        raise ToolError(f"the tool did not finish within its {tool.timeout:g} s timeout", "timeout") from None


async def _admit(run: Run, tool: Tool, call: ToolCall) -> str | None:
    """The policy's say on this call, asked before it runs. Returns the approved action id, if any."""
    budget = budget_exceeded(run.policy, run, before="tool")
    if budget:
        run.emit(PolicyDecided, decision="budget", rule=budget[0], reason=budget[1], tool=tool.qualified_name,
                 call_id=call.id)
        raise ToolError(f"not run: {budget[1]}", "budget")
    decision = decide(run.policy, tool, call.arguments, run.events)
    run.emit(PolicyDecided, decision=decision.action, rule=decision.rule, reason=decision.reason,
             tool=tool.qualified_name, call_id=call.id)
    if decision.action == "deny":
        raise ToolError(f"not allowed by the policy ({decision.rule}): {decision.reason}", "denied")
    run.calls_admitted += 1
    if decision.action != "confirm":
        return None
    action = PendingAction(
        id=action_id(run.id, call.id, tool.qualified_name, call.arguments),
        run_id=run.id,
        call_id=call.id,
        tool=tool.qualified_name,
        arguments=call.arguments,
        summary=tool.summary(call.arguments) if tool.summary else summarize(tool.qualified_name, call.arguments),
        reason=decision.reason,
        from_untrusted=untrusted_arguments(call.arguments, run.events),
    )
    if not await run.request_confirmation(action):
        raise ToolError("the person did not approve this action, so it was not done", "rejected")
    return action.id


def to_content(value: Any, budget: int = RESULT_BUDGET) -> str:
    """Tool output as the text the model reads, cut to a budget with a note saying so."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > budget:
        text = text[:budget] + f"\n[truncated: {len(text) - budget} more characters not shown]"
    return text
