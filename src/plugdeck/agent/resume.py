"""Carry on a run that waits for a person, from its checkpoint in the run store, in any process.

    checkpoint = store.checkpoint(run_id)                         # its `setup` rebuilds the agent
    agent = build_agent(config, AgentSetup(**checkpoint["setup"]), sinks=[store.record])
    run = await agent.resume(run_id, store, {action_id: True})    # or False to refuse

The decisions are recorded, and the run taken over, in one transaction: a decision is a single
transition from `pending` that only one process wins (a second approver gets ActionNotPending),
and an approved action is claimed before it runs, so it runs once. The run then goes on in this
process, from the same step, appending to the same stored run: finished results are reused,
approved calls run (with the action id as their idempotency key), refused ones go back to the
model as refusals, undecided ones wait again, and the model carries on.

When another process is carrying the run on at that moment, the decisions are recorded for it
(it reads them before it waits again) and `resume` returns None.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Iterable

from ..events import RunStarted, ToolFinished, event_from_dict
from ..models.base import ToolCall
from ..ops.rundb import RunStoreError
from .checkpoint import COUNTERS
from .confirm import PendingAction
from .executor import run_tool_call, tool_message
from .loop import tool_loop
from .run import Run, Sink

if TYPE_CHECKING:
    from ..ops.runstore import RunStore
    from .agent import Agent

INTERRUPTED = ("the process carrying out this approved action stopped before it reported back; whether it was "
               "done is not known, so it was not done again")


async def resume(agent: Agent, run_id: str, store: RunStore, approvals: dict[str, bool] | None = None, *,
                 by: str = "person", notes: dict[str, str] | None = None, api_key_id: str | None = None,
                 sinks: Iterable[Sink] = ()) -> Run | None:
    """Decide pending actions of a stored run ({action_id: approved}) and carry the run on here.

    Returns the Run once it finishes or waits again, or None when another process carries it on.
    Raises KeyError (no such run, or one of another `api_key_id`), ActionNotPending (already decided,
    or not an action of this run) and RunNotWaiting (the run has finished)."""
    notes = notes or {}
    decisions = {action_id: (bool(ok), by, notes.get(action_id, "")) for action_id, ok in (approvals or {}).items()}
    driver = uuid.uuid4().hex
    taken = await asyncio.to_thread(store.take_over, run_id, decisions, driver=driver, api_key_id=api_key_id)
    if taken is None:
        return None
    try:
        stored = await asyncio.to_thread(store.get_run, run_id)
        run = _restore(agent, store, taken, stored["events"], [*agent.sinks, *sinks])
    except Exception:
        # Give it back, waiting, with the decisions recorded: the next resume carries them out.
        with suppress(RunStoreError):
            await asyncio.to_thread(store.release, run_id, driver=driver)
        raise
    run.driver = driver
    checkpoint = taken["checkpoint"]
    run.start(agent._carry(run, lambda: _carry_on(agent, run, checkpoint, taken["actions"]),
                          checkpoint["deadline_left"], None))
    return await run.settled()


def _restore(agent: Agent, store: RunStore, taken: dict[str, Any], events: list[dict[str, Any]],
             sinks: list[Sink]) -> Run:
    checkpoint = taken["checkpoint"]
    if not any(getattr(sink, "__self__", None) is store for sink in sinks):
        sinks.append(store.record)
    run = Run(checkpoint["question"], run_id=taken["run"]["id"], sinks=sinks, api_key_id=taken["run"]["api_key_id"])
    # What happened so far, for the policy's provenance rules and the answer checks; not recorded again.
    run.events = [event_from_dict(e) for e in events]
    for name in COUNTERS:
        setattr(run, name, checkpoint["counters"][name])
    run.started -= time.time() - checkpoint["started_at"]  # event times go on from the run's start
    run.store, run.setup, run.planner, run.max_steps = store, checkpoint["setup"], "loop", agent.max_steps
    run.policy, run.confirmer = agent.policy, agent.confirm
    run.prices = getattr(agent.model, "prices", (0.0, 0.0))
    run.loop_messages = checkpoint["messages"]
    run.messages = [m for m in run.loop_messages if m.get("role") != "system"]
    run.stored_actions.update(checkpoint["waiting"])
    return run


async def _carry_on(agent: Agent, run: Run, checkpoint: dict[str, Any], actions: dict[str, dict[str, Any]]) -> str:
    """Finish the turn that waited, then go on with the tool loop."""
    step = checkpoint["step"]
    results = dict(checkpoint["results"])
    results.update({e.call_id: tool_message(e)["content"]  # calls of the turn that finished after the checkpoint
                    for e in run.events if isinstance(e, ToolFinished) and e.step == step})
    by_call = {actions[a]["call_id"]: actions[a] for a in checkpoint["waiting"] if a in actions}
    jobs = [_finish_call(agent, run, call, step, results.get(call["call_id"]), by_call.get(call["call_id"]))
            for call in checkpoint["calls"]]
    messages = run.loop_messages
    messages.extend(await asyncio.gather(*jobs))
    started = next((e for e in run.events if isinstance(e, RunStarted)), None)
    return await tool_loop(run, agent.model_for(run), agent.offered_again(started), messages, agent.max_steps,
                           first_step=step + 1)


async def _finish_call(agent: Agent, run: Run, call: dict[str, Any], step: int, result: str | None,
                       action: dict[str, Any] | None) -> dict[str, Any]:
    if result is not None:
        return {"role": "tool", "tool_call_id": call["call_id"], "content": result}
    tool_call = ToolCall(call["call_id"], call["tool"], call["arguments"], json.dumps(call["arguments"]))
    if action is None:  # it never finished and asked nobody: run it again
        return tool_message(await run_tool_call(run, agent.toolset, tool_call, step))
    waiting = PendingAction(id=action["id"], run_id=run.id, call_id=action["call_id"], tool=action["tool"],
                            arguments=action["arguments"], summary=action["summary"], reason=action["reason"],
                            from_untrusted=action["from_untrusted"], requested_at=action["requested_at"])
    if action["status"] == "pending":
        finished = await run_tool_call(run, agent.toolset, tool_call, step, waiting=waiting)
    elif action["status"] in ("approved", "rejected"):
        decision = (action["status"] == "approved", action["decided_by"] or "", action["note"] or "",
                    action["decided_at"] or time.time())
        finished = await run_tool_call(run, agent.toolset, tool_call, step, waiting=waiting, decision=decision)
    else:  # executed by a process that stopped before it reported, or expired
        message = INTERRUPTED if action["status"] == "executed" else f"this action is {action['status']}; not done"
        finished = run.emit(ToolFinished, step=step, call_id=call["call_id"], tool=call["tool"],
                            arguments=call["arguments"], error={"kind": "interrupted", "message": message})
    return tool_message(finished)
