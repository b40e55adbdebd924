"""The checkpoint of a run that waits for a person: everything another process needs to carry it on.

It is plain JSON, committed by RunStore.park after the run's events, beside its pending actions:

    messages       the conversation as the model reads it (system prompt included), ending with the
                   assistant turn whose tool calls wait
    step, calls    that turn's step, and its calls (call id, tool, arguments) in the model's order
    results        the tool messages of the calls of that turn that had finished
    waiting        the ids of the actions that wait (their tool, arguments and summary are in `actions`)
    counters       steps, model calls, tool calls, calls admitted, tokens and cost so far
    setup          the AgentSetup fields the agent was built from, to rebuild it (None: made in code)
    deadline_left  seconds of the run's deadline still to use; max_steps, question, model, planner,
                   started_at, api_key_id, prices: the rest of the run's state

A plan-planner run is carried on by the tool loop: its turn is the plan's calls that had started,
as if the model had asked for them at once, and steps of the plan that had not started are left to
the model, which reads the results and goes on.
"""

from __future__ import annotations

import json
from typing import Any

from ..events import RunStarted, ToolFinished, ToolStarted
from .executor import tool_message
from .run import Run

VERSION = 1
COUNTERS = ("steps", "model_calls", "tool_calls", "calls_admitted", "prompt_tokens", "completion_tokens", "spent")


def checkpoint_of(run: Run) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(checkpoint, pending actions) of a run whose calls have all finished or wait for a person."""
    step = next((e.step for e in reversed(run.events) if isinstance(e, ToolStarted)), run.steps)
    calls = [{"call_id": e.call_id, "tool": e.tool, "arguments": e.arguments}
             for e in run.events if isinstance(e, ToolStarted) and e.step == step]
    results = {e.call_id: tool_message(e)["content"]
               for e in run.events if isinstance(e, ToolFinished) and e.step == step}
    messages = list(run.loop_messages)
    if run.planner != "loop":
        messages.append(assistant_turn(calls))
    started = next(e for e in run.events if isinstance(e, RunStarted))
    actions = [action.to_dict() for action in run.waiting]
    data = {
        "version": VERSION,
        "step": step,
        "messages": messages,
        "calls": calls,
        "results": results,
        "waiting": [a["id"] for a in actions],
        "counters": {name: getattr(run, name) for name in COUNTERS},
        "setup": run.setup,
        "deadline_left": run.deadline_left(),
        "max_steps": run.max_steps,
        "question": run.question,
        "model": started.model,
        "planner": run.planner,
        "started_at": started.started_at,
        "api_key_id": run.api_key_id,
        "prices": list(run.prices),
    }
    return data, actions


def assistant_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls as one assistant message asking for them (OpenAI format)."""
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": c["call_id"], "type": "function",
         "function": {"name": c["tool"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
        for c in calls]}
