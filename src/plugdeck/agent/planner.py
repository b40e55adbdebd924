"""Planners: how a run gets from the question to the answer. The Agent asks its planner to `answer`,
and, after a pause, to `carry_on` from the checkpoint (plugdeck.agent.pause). Both planners here go
through the same executor and admission chain, so the policy, confirmations, limits and events are
the same whichever answers.

    loop   one model call per step: the model asks for tools, sees their results, asks again or answers
    plan   one model call writes the whole graph of calls, they run, one more call answers (plan.py);
           a plan that cannot be used falls back to the loop, and a paused plan is carried on by it
    auto   chooses per question (below)

A third party implements the Planner protocol and passes the object as `Agent(planner=...)`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Protocol, runtime_checkable

from ..events import PlannerNote, ToolFinished
from ..models.base import Model, ToolCall
from ..tools import Toolset
from .admission import Waiting
from .executor import run_tool_call, tool_message
from .loop import tool_loop
from .pause import INTERRUPTED, Paused, PendingAction
from .turn import Turn


@runtime_checkable
class Planner(Protocol):
    name: str

    async def answer(self, turn: Turn, model: Model, toolset: Toolset) -> str:
        """The answer to the run's question (before answer checks); raise Paused to wait for a person."""
        ...

    async def carry_on(self, turn: Turn, model: Model, toolset: Toolset, checkpoint: dict[str, Any],
                       actions: dict[str, dict[str, Any]]) -> str:
        """Go on after a pause: `checkpoint` as the planner left it, `actions` with their decisions."""
        ...


class LoopPlanner:
    name = "loop"

    async def answer(self, turn: Turn, model: Model, toolset: Toolset) -> str:
        return await tool_loop(turn, model, toolset)

    async def carry_on(self, turn: Turn, model: Model, toolset: Toolset, checkpoint: dict[str, Any],
                       actions: dict[str, dict[str, Any]]) -> str:
        """Finish the step that waited, then go on with the tool loop."""
        step = checkpoint["step"]
        results = dict(checkpoint["results"])
        by_call = {actions[a]["call_id"]: actions[a] for a in checkpoint["waiting"] if a in actions}
        outcomes = await asyncio.gather(*(
            _finish_call(turn, toolset, call, step, results.get(call["call_id"]), by_call.get(call["call_id"]))
            for call in checkpoint["calls"]))
        waiting = [o.action for o in outcomes if isinstance(o, Waiting)]
        if waiting:
            done = {o["tool_call_id"]: o["content"] for o in outcomes if isinstance(o, dict)}
            raise Paused(step, checkpoint["calls"], done, waiting)
        turn.messages.extend(outcomes)
        return await tool_loop(turn, model, toolset, first_step=step + 1)


class PlanPlanner:
    name = "plan"

    def __init__(self, max_replans: int = 1, system_prompt: str | None = None):
        self.max_replans, self.system_prompt = max_replans, system_prompt

    async def answer(self, turn: Turn, model: Model, toolset: Toolset) -> str:
        from .plan import PlanError, PlanRunner

        try:
            answer = await PlanRunner(turn, model, toolset, self.max_replans, self.system_prompt).answer()
        except PlanError as exc:
            turn.planner = "loop"
            turn.run.emit(PlannerNote, planner="loop", message=f"the plan could not be used ({exc}); "
                                                               "falling back to the tool loop")
            return await tool_loop(turn, model, toolset)
        turn.messages.append({"role": "assistant", "content": answer})
        return answer

    async def carry_on(self, turn: Turn, model: Model, toolset: Toolset, checkpoint: dict[str, Any],
                       actions: dict[str, dict[str, Any]]) -> str:
        turn.planner = "loop"
        return await LoopPlanner().carry_on(turn, model, toolset, checkpoint, actions)


# Words that ask for several things at once ("compare A and B", "prices of A, B and C").
_SEVERAL = re.compile(r"\b(and|both|each|every|all|compare|versus|vs)\b|[^\W\d], [^\W\d]", re.I)
# Words that make the next step depend on a result ("if it is open, ...; if not, ..."): a plan made
# ahead would have to be made again, which costs more model calls than the tool loop.
_CONDITIONAL = re.compile(r"\b(if|whether|unless|otherwise|depending)\b", re.I)


def choose(question: str, model_name: str, has_tools: bool) -> tuple[str, str]:
    """The `auto` planner's choice for a question: (loop | plan, why)."""
    if model_name == "rules" or not has_tools:
        return "loop", "the rules model and tool-less agents use the tool loop"
    if _CONDITIONAL.search(question):
        return "loop", "what to do depends on a result (if/whether): a plan made ahead would be redone"
    if _SEVERAL.search(question):
        return "plan", "the question asks for several things that can be looked up at once"
    return "loop", "a single line of inquiry: planning ahead would add a model call"


async def _finish_call(turn: Turn, toolset: Toolset, call: dict[str, Any], step: int, result: str | None,
                       action: dict[str, Any] | None) -> dict[str, Any] | Waiting:
    if result is not None:
        return {"role": "tool", "tool_call_id": call["call_id"], "content": result}
    tool_call = ToolCall(call["call_id"], call["tool"], call["arguments"], json.dumps(call["arguments"]))
    if action is None:  # it never finished and asked nobody: run it again
        outcome = await run_tool_call(turn, toolset, tool_call, step)
        return outcome if isinstance(outcome, Waiting) else tool_message(outcome)
    earlier = PendingAction(id=action["id"], run_id=turn.run.id, call_id=action["call_id"], tool=action["tool"],
                            arguments=action["arguments"], summary=action["summary"], reason=action["reason"],
                            from_untrusted=action["from_untrusted"], requested_at=action["requested_at"])
    if action["status"] == "pending":
        outcome = await run_tool_call(turn, toolset, tool_call, step, earlier=earlier)
    elif action["status"] in ("approved", "rejected"):
        decision = (action["status"] == "approved", action["decided_by"] or "", action["note"] or "",
                    action["decided_at"] or time.time())
        outcome = await run_tool_call(turn, toolset, tool_call, step, earlier=earlier, decision=decision)
    else:  # executed by a process that stopped before it reported, or expired
        message = INTERRUPTED if action["status"] == "executed" else f"this action is {action['status']}; not done"
        outcome = turn.run.emit(ToolFinished, step=step, call_id=call["call_id"], tool=call["tool"],
                                arguments=call["arguments"], error={"kind": "interrupted", "message": message})
    return outcome if isinstance(outcome, Waiting) else tool_message(outcome)
