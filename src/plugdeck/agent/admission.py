"""Admission: the one chain every tool call passes before it runs, whoever asks for it (the tool loop,
the compiled plan, a resumed run, `plugdeck tools call`, the MCP server).

    limits     the run's limits (tool calls admitted so far)          -> refused: "budget"
    hooks      extensions' before-tool-call hooks (plugdeck.extensions) -> refused by a hook
    policy     allow / deny / confirm, with the run's provenance and data flows (plugdeck.policy)
    confirm    an action a person must OK: decided already (a resume), asked at once (a confirmer),
               or the call waits: `Waiting` (the run then pauses, see plugdeck.agent.pause)
    expiry     an approval older than CONFIRMATION_TTL is refused
    claim      an approved action runs once, however many processes could carry the run on

Each step is a small function; `admit` runs them in order. A refusal is a ToolError the model reads.
A call carried on after a pause (`earlier`: the action asked about before) skips the steps it passed
then, except the policy: it may have changed meanwhile and still has the last word on a deny.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..events import ConfirmationAnswered, ConfirmationRequested, PolicyDecided
from ..models.base import ToolCall
from ..policy.engine import decide, limit_reached
from ..tools import Tool, ToolError
from .confirm import CONFIRMATION_TTL, PendingAction, action_id, summarize, untrusted_arguments
from .turn import Turn

# A decision taken for an action: approved, by whom, note, when (wall clock).
Decision = tuple[bool, str, str, float]


@dataclass(frozen=True)
class Admitted:
    approved_action: str | None = None  # the approved action's id: the tool's idempotency key


@dataclass(frozen=True)
class Waiting:
    """The call waits for a person's decision; the run's turn ends with it pending."""

    action: PendingAction


async def admit(turn: Turn, tool: Tool, call: ToolCall, *, earlier: PendingAction | None = None,
                decision: Decision | None = None) -> Admitted | Waiting:
    """Run the chain for one call (its arguments already validated). Raises ToolError on a refusal."""
    if earlier is None:
        _within_limits(turn, tool, call)
        await _hooks_allow(turn, tool, call)
    ruling = _policy(turn, tool, call, announce=earlier is None)
    if ruling is None:
        return Admitted()
    action = earlier or _new_action(turn, tool, call, ruling)
    if earlier is not None and action_id(turn.run.id, call.id, tool.qualified_name, call.arguments) != earlier.id:
        raise ToolError("the tool or its arguments are not the ones the person was asked about, so it was not done",
                        "changed")
    if decision is None:
        if earlier is None:
            _announce(turn, action)
        if turn.confirmer is None:
            return Waiting(action)
        approved, by = await turn.ask(action)
        decision = (approved, by, "", time.time())
    approved, by, note, decided_at = decision
    turn.run.emit(ConfirmationAnswered, action_id=action.id, approved=approved, by=by, note=note)
    if not approved:
        raise ToolError("the person did not approve this action, so it was not done", "rejected")
    _not_expired(turn, action, decided_at)
    await _claim(turn, action.id)
    return Admitted(action.id)


def _within_limits(turn: Turn, tool: Tool, call: ToolCall) -> None:
    reached = limit_reached(turn.limits, turn.run.usage, before="tool")
    if reached:
        turn.run.emit(PolicyDecided, decision="budget", rule=reached[0], reason=reached[1], tool=tool.qualified_name,
                      call_id=call.id)
        raise ToolError(f"not run: {reached[1]}", "budget")


async def _hooks_allow(turn: Turn, tool: Tool, call: ToolCall) -> None:
    from .. import extensions

    if extensions.has_tool_hooks():
        await extensions.before_tool_call(call_info(turn, tool, call))


def call_info(turn: Turn, tool: Tool, call: ToolCall) -> Any:
    from ..extensions import ToolCallInfo

    return ToolCallInfo(run_id=turn.run.id, call_id=call.id, tool=tool.qualified_name,
                        arguments=dict(call.arguments or {}), effect=tool.effect)


def _policy(turn: Turn, tool: Tool, call: ToolCall, *, announce: bool) -> str | None:
    """None: allowed. Otherwise the reason a person must confirm. Raises ToolError on a deny."""
    ruling = decide(turn.policy, tool, call.arguments, turn.run.events)
    if announce or ruling.action == "deny":
        turn.run.emit(PolicyDecided, decision=ruling.action, rule=ruling.rule, reason=ruling.reason,
                      tool=tool.qualified_name, call_id=call.id, details=ruling.details)
    if ruling.action == "deny":
        raise ToolError(f"not allowed by the policy ({ruling.rule}): {ruling.reason}", "denied")
    if announce:
        turn.run.usage.calls_admitted += 1
    return ruling.reason if ruling.action == "confirm" else None


def _new_action(turn: Turn, tool: Tool, call: ToolCall, reason: str) -> PendingAction:
    run = turn.run
    return PendingAction(
        id=action_id(run.id, call.id, tool.qualified_name, call.arguments),
        run_id=run.id,
        call_id=call.id,
        tool=tool.qualified_name,
        arguments=call.arguments,
        summary=tool.summary(call.arguments) if tool.summary else summarize(tool.qualified_name, call.arguments),
        reason=reason,
        from_untrusted=untrusted_arguments(call.arguments, run.events, run.messages[:-1]),
    )


def _announce(turn: Turn, action: PendingAction) -> None:
    turn.run.emit(ConfirmationRequested, action_id=action.id, call_id=action.call_id, tool=action.tool,
                  arguments=action.arguments, summary=action.summary, reason=action.reason,
                  from_untrusted=action.from_untrusted)


def _not_expired(turn: Turn, action: PendingAction, decided_at: float) -> None:
    if not action.expired(decided_at):
        return
    reason = (f"the approval came {decided_at - action.requested_at:.0f} s after the question; approvals are "
              f"valid for {CONFIRMATION_TTL:.0f} s")
    turn.run.emit(PolicyDecided, decision="deny", rule="confirmation_ttl", reason=reason, tool=action.tool,
                  call_id=action.call_id)
    raise ToolError(f"not done: {reason}. Ask the person again if it is still wanted.", "expired")


async def _claim(turn: Turn, approved_id: str) -> None:
    """An approved action the book knows runs once, even when several processes could carry the run on.
    One decided at once by a confirmer is known to this process only: that answer was its one use."""
    if approved_id not in turn.booked:
        return
    from .pause import BookError

    try:
        claimed = await asyncio.to_thread(turn.book.claim, approved_id, driver=turn.driver)
    except BookError as exc:
        raise ToolError(f"not run: the run store could not make sure this action runs only once ({exc})",
                        "store_unavailable") from None
    if not claimed:
        raise ToolError("this approved action was already carried out by another process, so it was not done again",
                        "already_done")
