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

from ..events import ConfirmationAnswered, PolicyDecided, ToolFinished, ToolStarted
from ..models.base import ToolCall
from ..policy.engine import budget_exceeded, decide
from ..policy.isolation import neutralise_value
from ..redaction import redact_value
from ..tools import Tool, ToolError, Toolset
from .confirm import CONFIRMATION_TTL, PendingAction, action_id, summarize, untrusted_arguments
from .run import Run

RESULT_BUDGET = 20_000  # characters of one tool result sent back to the model
# A decision taken earlier (recorded in the run store): approved, by whom, note, when (wall clock).
Decision = tuple[bool, str, str, float]


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


async def run_tool_call(run: Run, toolset: Toolset, call: ToolCall, step: int, *,
                        waiting: PendingAction | None = None,
                        decision: Decision | None = None) -> ToolFinished:
    """One call through validation, the policy and confirmation; never raises for the tool's faults.

    `waiting`: the call's action was asked about before (a run carried on from its checkpoint); it is
    not announced again, and `decision` is the answer already given, if any."""
    tool = toolset.resolve(call.name)
    name = tool.qualified_name if tool else call.name
    arguments = call.arguments if call.arguments is not None else call.raw_arguments
    async with run.calling():
        if waiting is None:
            run.emit(ToolStarted, step=step, call_id=call.id, tool=name, arguments=arguments,
                     traits=traits_of(tool) if tool else None)
        started = time.perf_counter()
        result: Any = None
        error: dict[str, str] | None = None
        try:
            result = await _invoke(tool, call, toolset, run, waiting, decision)
        except ToolError as exc:
            error = exc.to_dict()
        except Exception as exc:  # a crash inside the tool is the tool's problem, not the run's
            error = {"kind": "tool_exception", "message": f"{type(exc).__name__}: {exc}"}
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


async def _invoke(tool: Tool | None, call: ToolCall, toolset: Toolset, run: Run, waiting: PendingAction | None,
                  decision: Decision | None) -> Any:
    if tool is None:
        known = ", ".join(spec.name for spec in toolset.specs) or "none"
        raise ToolError(f"there is no tool named {call.name!r}; the tools are: {known}", "unknown_tool")
    if call.error:
        raise ToolError(f"{call.error}. Send the call again with the arguments as one JSON object.", "invalid_json")
    kwargs = tool.validate(call.arguments)
    if waiting is None:
        approved_action = await _admit(run, tool, call)
    else:
        approved_action = await _admit_waiting(run, tool, call, waiting, decision)
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
             tool=tool.qualified_name, call_id=call.id, details=decision.details)
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
        from_untrusted=untrusted_arguments(call.arguments, run.events, run.messages[:-1]),
    )
    if not await run.request_confirmation(action):
        raise ToolError("the person did not approve this action, so it was not done", "rejected")
    _refuse_if_expired(run, action, time.time())
    return await _claim(run, action.id)


async def _admit_waiting(run: Run, tool: Tool, call: ToolCall, action: PendingAction,
                         decision: Decision | None) -> str:
    """A call whose action was asked about before: admitted then, decided now (or waited for again)."""
    if action_id(run.id, call.id, tool.qualified_name, call.arguments) != action.id:
        raise ToolError("the tool or its arguments are not the ones the person was asked about, so it was not done",
                        "changed")
    now = decide(run.policy, tool, call.arguments, run.events)
    if now.action == "deny":  # the policy may have changed while the run waited; it still has the last word
        run.emit(PolicyDecided, decision="deny", rule=now.rule, reason=now.reason, tool=tool.qualified_name,
                 call_id=call.id)
        raise ToolError(f"not allowed by the policy ({now.rule}): {now.reason}", "denied")
    if decision is None:
        approved = await run.request_confirmation(action, announce=False)
        decided_at = time.time()
    else:
        approved, by, note, decided_at = decision
        run.emit(ConfirmationAnswered, action_id=action.id, approved=approved, by=by, note=note)
    if not approved:
        raise ToolError("the person did not approve this action, so it was not done", "rejected")
    _refuse_if_expired(run, action, decided_at)
    return await _claim(run, action.id)


def _refuse_if_expired(run: Run, action: PendingAction, decided_at: float) -> None:
    if not action.expired(decided_at):
        return
    reason = (f"the approval came {decided_at - action.requested_at:.0f} s after the question; approvals are "
              f"valid for {CONFIRMATION_TTL:.0f} s")
    run.emit(PolicyDecided, decision="deny", rule="confirmation_ttl", reason=reason, tool=action.tool,
             call_id=action.call_id)
    raise ToolError(f"not done: {reason}. Ask the person again if it is still wanted.", "expired")


async def _claim(run: Run, approved_id: str) -> str:
    """An approved action runs once, even when several processes could carry the run on."""
    if not await run.claim(approved_id):
        raise ToolError("this approved action was already carried out by another process, so it was not done again",
                        "already_done")
    return approved_id


def to_content(value: Any, budget: int = RESULT_BUDGET) -> str:
    """Tool output as the text the model reads: isolated, then cut to a budget with a note saying so."""
    value, _ = neutralise_value(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > budget:
        text = text[:budget] + f"\n[truncated: {len(text) - budget} more characters not shown]"
    return text
