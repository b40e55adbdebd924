"""Run the tool calls of one model turn: validated, concurrently, each within its timeout.

Whatever goes wrong inside a call (unknown tool, bad arguments, an exception, a timeout) becomes
a structured error in the tool's result message, so the model can correct itself and the run
goes on. What the model reads of a result is isolated first (plugdeck.policy.isolation: no
chat-template tokens, no invisible characters) and cut to RESULT_BUDGET characters.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..events import SandboxNoted, ToolFinished, ToolStarted, tool_call_notes
from ..models.base import ToolCall
from ..policy.isolation import neutralise_value
from ..policy.load import Policy
from ..redaction import redact_value
from ..tools import RunContext, Tool, ToolError, Toolset
from .admission import Decision, Waiting, admit, call_info
from .confirm import Confirmer, PendingAction
from .run import Run
from .turn import Turn

RESULT_BUDGET = 20_000  # characters of one tool result sent back to the model


async def run_tool_calls(turn: Turn, toolset: Toolset, calls: list[ToolCall], step: int) -> list[ToolFinished | Waiting]:
    """Execute the calls concurrently; their outcomes in the order the model asked for them."""
    seen: set[str] = set()
    jobs = []
    for call in calls:
        if call.id in seen:  # a repeated id would make two results indistinguishable to the model
            call = ToolCall(f"{call.id}_{len(seen)}", call.name, call.arguments, call.raw_arguments, call.error)
        seen.add(call.id)
        jobs.append(run_tool_call(turn, toolset, call, step))
    return [await jobs[0]] if len(jobs) == 1 else list(await asyncio.gather(*jobs))


def tool_message(finished: ToolFinished) -> dict[str, Any]:
    """A finished call as the model reads it: the result, or the error it can correct."""
    content = to_content({"error": finished.error} if finished.error else finished.result)
    return {"role": "tool", "tool_call_id": finished.call_id, "content": content}


async def run_tool_call(turn: Turn, toolset: Toolset, call: ToolCall, step: int, *,
                        earlier: PendingAction | None = None, decision: Decision | None = None) -> ToolFinished | Waiting:
    """One call through validation and admission, then the tool; never raises for the tool's faults.

    Returns the finished call, or Waiting when its action waits for a person. `earlier`: the call's
    action was asked about before (a run carried on after a pause); `decision`: the answer given."""
    run = turn.run
    tool = toolset.resolve(call.name)
    name = tool.qualified_name if tool else call.name
    arguments = call.arguments if call.arguments is not None else call.raw_arguments
    if earlier is None:
        run.emit(ToolStarted, step=step, call_id=call.id, tool=name, arguments=arguments,
                 traits=traits_of(tool) if tool else None)
    started = time.perf_counter()
    result: Any = None
    error: dict[str, str] | None = None
    try:
        outcome = await _invoke(tool, call, toolset, turn, earlier, decision)
        if isinstance(outcome, Waiting):
            return outcome
        result = outcome
    except ToolError as exc:
        error = exc.to_dict()
    except Exception as exc:  # a crash inside the tool is the tool's problem, not the run's
        error = {"kind": "tool_exception", "message": f"{type(exc).__name__}: {exc}"}
    if tool is not None and _hooks_on():
        try:
            result = await _after_hooks(turn, tool, call, result, error)
        except ToolError as exc:  # a hook that fails withholds the result rather than let it out unchecked
            result, error = None, exc.to_dict()
    latency = time.perf_counter() - started
    # The platform's secrets leave a tool's answer here, in any encoding or piece, before the model,
    # the events, the run store and the traces see it (R10, plugdeck.redaction).
    result, error = redact_value(result), redact_value(error)
    _, removed = neutralise_value(error if error else result)
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
        private=bool(tool and tool.private),
        place=tool.destination if tool else None,
        neutralised={k: n for k, n in removed.items() if n} or None,
    )


def traits_of(tool: Tool) -> dict[str, Any]:
    """What the policy knows of a tool, recorded with each call (see ToolStarted.traits)."""
    return {"effect": tool.effect, "origin": tool.origin, "untrusted": tool.untrusted, "private": tool.private,
            "egress": tool.destination}


async def _invoke(tool: Tool | None, call: ToolCall, toolset: Toolset, turn: Turn, earlier: PendingAction | None,
                  decision: Decision | None) -> Any:
    if tool is None:
        known = ", ".join(spec.name for spec in toolset.specs) or "none"
        raise ToolError(f"there is no tool named {call.name!r}; the tools are: {known}", "unknown_tool")
    if call.error:
        raise ToolError(f"{call.error}. Send the call again with the arguments as one JSON object.", "invalid_json")
    kwargs = tool.validate(call.arguments)
    admitted = await admit(turn, tool, call, earlier=earlier, decision=decision)
    if isinstance(admitted, Waiting):
        return admitted
    context = RunContext(deps=turn.deps, run_id=turn.run.id, usage=turn.run.usage, call_id=call.id)

    def note(plugin: str, kind: str, details: dict[str, Any]) -> None:  # a sandbox's event, filed under this call
        turn.run.emit(SandboxNoted, call_id=call.id, tool=tool.qualified_name, plugin=plugin, kind=kind,
                      details=details)

    token = tool_call_notes.set(note)  # before wait_for: its task copies this context
    try:
        return await asyncio.wait_for(tool.invoke(kwargs, admitted.approved_action, context), tool.timeout)
    except asyncio.TimeoutError:
        raise ToolError(f"the tool did not finish within its {tool.timeout:g} s timeout", "timeout") from None
    finally:
        tool_call_notes.reset(token)


def _hooks_on() -> bool:
    from .. import extensions

    return extensions.has_tool_hooks()


async def _after_hooks(turn: Turn, tool: Tool, call: ToolCall, result: Any, error: dict[str, str] | None) -> Any:
    from .. import extensions

    return await extensions.after_tool_call(call_info(turn, tool, call), result, error)


async def call_tool(tool: Tool, arguments: dict[str, Any], *, policy: Policy, confirmer: Confirmer,
                    question: str, call_id: str = "call", sinks: Any = ()) -> ToolFinished:
    """One tool call outside a conversation (`plugdeck tools call`, the MCP server), through the same
    validation and admission as the agent's: a person's OK comes from `confirmer`, at once."""
    run = Run(question, sinks=sinks)
    turn = Turn(run=run, policy=policy, limits=policy.limits, messages=[], book=None, confirmer=confirmer)
    toolset = Toolset([tool])
    call = ToolCall(call_id, toolset.specs[0].name, arguments, json.dumps(arguments, default=str))
    outcome = await run_tool_call(turn, toolset, call, step=1)
    assert isinstance(outcome, ToolFinished)  # with a confirmer, nothing waits
    return outcome


def to_content(value: Any, budget: int = RESULT_BUDGET) -> str:
    """Tool output as the text the model reads: isolated, then cut to a budget with a note saying so."""
    value, _ = neutralise_value(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > budget:
        text = text[:budget] + f"\n[truncated: {len(text) - budget} more characters not shown]"
    return text
