"""A pause is a value: how a run waits for a person, and the one way it goes on.

When admission (plugdeck.agent.admission) finds that a call needs a person's OK and no one can be
asked at once, the call returns `Waiting`. The other calls of the same step finish; then the planner
raises `Paused` and the run's turn ends: its checkpoint and pending actions go to a *book* (the run
store, or this process's memory when the run is not recorded), and the run's status is `waiting`.

`Agent.resume(run_id, decisions)` is the one way on, in any process that can read the book: it
records the decisions and takes the run over in one transaction, then the planner carries the
waiting step on (finished results reused, approved calls run, refused ones go to the model as
refusals, undecided ones wait again) and the run goes on. `run.confirm(id)` / `run.reject(id)` and
the server's decisions are this path; a confirmer (the CLI's prompt, a Python callback) is this path
with the decision supplied at once, inside admission, without ending the turn.

    start ──> running ──(answer / limit / error / cancel)──> ok | max_steps | budget | deadline | error | cancelled
                 │  ▲
      a call waits│  │ resume(run_id, decisions): decisions recorded, run taken over (one winner)
                 ▼  │
               waiting ──(decided while the run was still busy: carried on at once)──> running

An action's own states (in the book): pending -> approved | rejected (one decision wins; a second
gets ActionNotPending) -> executed (an approved action is claimed once before it runs, so it runs
once whoever carries the run on). Approvals are bound to the exact tool and arguments (the action
id hashes them) and expire after CONFIRMATION_TTL.

The checkpoint is plain JSON:

    messages       the conversation as the model reads it (system prompt included), ending with the
                   assistant turn whose calls wait
    step, calls    that turn's step and its calls (call id, tool, arguments) in the model's order
    results        the tool messages of the calls of that step that finished
    waiting        the ids of the actions that wait (their tool, arguments and summary are in the book)
    usage          the run's Usage so far
    setup          the AgentSetup fields the agent was built from, to rebuild it (None: made in code)
    deadline_left  seconds of the run's deadline still to use; max_steps, question, model, planner,
                   started_at, api_key_id, prices: the rest of the run's state

A compiled-plan run is carried on by the tool loop: its step is the plan's calls that had started,
as if the model had asked for them at once; steps of the plan that had not started are left to the
model, which reads the results and goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Protocol, runtime_checkable

from ..errors import PlugdeckError, UserError
from ..events import RunStarted
from ..models.pricing import prices_data
from .confirm import PendingAction

log = logging.getLogger("plugdeck.agent")

VERSION = 2
INTERRUPTED = ("the process carrying out this approved action stopped before it reported back; whether it was "
               "done is not known, so it was not done again")


class BookError(UserError):
    """The book (the run store) could not keep or give back a pause."""


class ActionNotPending(UserError, KeyError):
    """The action is unknown, belongs to another run, or was already decided."""

    def __str__(self) -> str:
        return self.args[0]


class RunNotWaiting(BookError):
    """The run has finished (or was aborted): nothing of it waits for a decision."""


class Paused(PlugdeckError):
    """Raised by a planner when a step ends with calls waiting for a person: the turn ends here."""

    def __init__(self, step: int, calls: list[dict[str, Any]], results: dict[str, str], waiting: list[PendingAction],
                 assistant: dict[str, Any] | None = None):
        super().__init__(f"step {step} waits for {len(waiting)} decision(s)")
        self.step, self.calls, self.results, self.waiting = step, calls, results, waiting
        self.assistant = assistant  # the assistant turn asking for `calls`, when the messages lack it (plans)


@dataclass
class ParkOutcome:
    moved: bool = False  # another process carries the run on now
    decisions: dict[str, tuple[bool, str, str]] = field(default_factory=dict)  # made while the run was busy


@runtime_checkable
class Book(Protocol):
    """Where pauses are kept: the run store (plugdeck.ops.runstore.RunStore) or MemoryBook. Every
    method but `park` blocks (the agent calls them in a thread)."""

    def park(self, run_id: str, driver: str, checkpoint: dict[str, Any],
             actions: list[dict[str, Any]]) -> Awaitable[ParkOutcome]: ...

    def take_over(self, run_id: str, decisions: dict[str, tuple[bool, str, str]], *, driver: str,
                  api_key_id: str | None = None) -> dict[str, Any] | None: ...

    def claim(self, action_id: str, *, driver: str) -> bool: ...

    def release(self, run_id: str, *, driver: str) -> None: ...

    def get_run(self, run_id: str) -> dict[str, Any]: ...


class MemoryBook:
    """The book of runs that are not recorded to a run store: their pauses live as long as this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}

    def has(self, run_id: str) -> bool:
        return run_id in self._runs

    async def park(self, run_id: str, driver: str, checkpoint: dict[str, Any],
                   actions: list[dict[str, Any]]) -> ParkOutcome:
        self.keep(run_id, driver, checkpoint, actions)
        return ParkOutcome()

    def keep(self, run_id: str, driver: str, checkpoint: dict[str, Any], actions: list[dict[str, Any]]) -> None:
        with self._lock:
            entry = self._runs.setdefault(run_id, {"actions": {}, "api_key_id": checkpoint.get("api_key_id")})
            for action in actions:
                entry["actions"].setdefault(action["id"], pending(action))
            entry.update(checkpoint=checkpoint, status="waiting", driver=driver)

    def take_over(self, run_id: str, decisions: dict[str, tuple[bool, str, str]], *, driver: str,
                  api_key_id: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is None or (api_key_id is not None and entry["api_key_id"] != api_key_id):
                raise KeyError(f"no run with id {run_id!r}")
            if entry["status"] != "waiting":
                raise RunNotWaiting(f"run {run_id} is {entry['status']}: nothing of it waits for a decision")
            for action_id in decisions:
                action = entry["actions"].get(action_id)
                if action is None or action["status"] != "pending":
                    state = f"it was already {action['status']}" if action else "there is no such action"
                    raise ActionNotPending(f"action {action_id!r} of run {run_id} does not wait for a decision: {state}")
            for action_id, (approved, by, note) in decisions.items():
                entry["actions"][action_id].update(status="approved" if approved else "rejected", decided_by=by,
                                                   note=note, decided_at=time.time())
            entry.update(status="running", driver=driver)
            return {"run": {"id": run_id, "api_key_id": entry["api_key_id"], "status": "running"},
                    "checkpoint": entry["checkpoint"], "actions": {k: dict(v) for k, v in entry["actions"].items()}}

    def claim(self, action_id: str, *, driver: str) -> bool:
        with self._lock:
            for entry in self._runs.values():
                action = entry["actions"].get(action_id)
                if action is not None and action["status"] == "approved":
                    action["status"] = "executed"
                    return True
            return False

    def release(self, run_id: str, *, driver: str) -> None:
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is not None and entry["driver"] == driver:
                entry["status"] = "waiting"

    def forget(self, run_id: str) -> None:
        """The run finished: nothing of it waits any more."""
        with self._lock:
            self._runs.pop(run_id, None)

    def get_run(self, run_id: str) -> dict[str, Any]:
        raise KeyError(f"run {run_id} is kept in memory only; its events are on its Run")


def checkpoint_of(turn: Any, paused: Paused) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(checkpoint, pending actions) of a turn that ended paused."""
    run = turn.run
    messages = list(turn.messages)
    if paused.assistant is not None:
        messages.append(paused.assistant)
    started = next(e for e in run.events if isinstance(e, RunStarted))
    actions = [action.to_dict() for action in paused.waiting]
    data = {
        "version": VERSION,
        "step": paused.step,
        "messages": messages,
        "calls": paused.calls,
        "results": paused.results,
        "waiting": [a["id"] for a in actions],
        "usage": run.usage.to_dict(),
        "setup": turn.setup,
        "deadline_left": turn.deadline_left(),
        "max_steps": turn.max_steps,
        "question": run.question,
        "model": started.model,
        "planner": turn.planner,
        "started_at": started.started_at,
        "api_key_id": run.api_key_id,
        "prices": prices_data(turn.prices),
    }
    return data, actions


def usage_of(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The Usage fields of a checkpoint (version 1 kept them as `counters`, the cost as `spent`)."""
    if "usage" in checkpoint:
        return checkpoint["usage"]
    counters = dict(checkpoint.get("counters", {}))
    counters["cost"] = counters.pop("spent", 0.0)
    return counters


def assistant_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls as one assistant message asking for them (OpenAI format)."""
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": c["call_id"], "type": "function",
         "function": {"name": c["tool"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
        for c in calls]}


def pending(action: dict[str, Any]) -> dict[str, Any]:
    """An action as a book keeps it before anyone decides it."""
    return {**action, "status": "pending", "decided_by": None, "note": None, "decided_at": None}


def decided_actions(actions: list[dict[str, Any]], decisions: dict[str, tuple[bool, str, str]]) -> dict[str, dict]:
    """The book's view of just-parked actions, with decisions that were made meanwhile."""
    now = time.time()
    out = {}
    for action in actions:
        entry = pending(action)
        if action["id"] in decisions:
            approved, by, note = decisions[action["id"]]
            entry.update(status="approved" if approved else "rejected", decided_by=by, note=note, decided_at=now)
        out[action["id"]] = entry
    return out


async def park(turn: Any, paused: Paused, memory: MemoryBook) -> tuple[dict[str, Any], dict[str, dict]] | None:
    """Keep the pause in the turn's book (in memory when the run store cannot take it). Returns (the
    checkpoint, the actions with their decisions) when some were decided while the run was busy: carry
    on at once."""
    checkpoint, actions = checkpoint_of(turn, paused)
    run = turn.run
    turn.booked.update(a["id"] for a in actions)
    if turn.book is memory:
        memory.keep(run.id, turn.driver, checkpoint, actions)
        run.wait_for(paused.waiting)
        return None

    def only_here(problem: object) -> None:
        log.warning("run %s waits for a person, but its checkpoint was not stored (%s); it can be carried on "
                    "only in this process", run.id, problem)
        memory.keep(run.id, turn.driver, checkpoint, actions)

    try:
        parking = asyncio.ensure_future(turn.book.park(run.id, turn.driver, checkpoint, actions))
        outcome = await asyncio.wait_for(asyncio.shield(parking), getattr(turn.book, "timeout", None))
    except BookError as exc:
        only_here(exc)
    except TimeoutError:
        # The store is slow or away: the checkpoint goes in when it is back (its writer retries). The run
        # waits meanwhile; a decision goes through the store once it has the checkpoint.
        log.warning("run %s waits for a person; the run store is slow to take its checkpoint", run.id)
        parking.add_done_callback(lambda done: done.cancelled() or done.exception() is None
                                  or only_here(done.exception()))
    else:
        if outcome.moved:
            run.moved()
            return None
        if outcome.decisions:
            return checkpoint, decided_actions(actions, outcome.decisions)
    run.wait_for(paused.waiting)
    return None


# The pauses of runs of this process that no run store keeps.
MEMORY = MemoryBook()
