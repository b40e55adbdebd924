"""Runs in flight on this server: each is the agent's own Run (plugdeck.agent.run), with who started it.

A request that starts a run gets its LiveRun and a *driver*: a task that ends when the run settles
(finishes, or waits for a person). A decision starts a new driver (the run's confirm/reject, which
resume it). Streams follow the Run's events until their driver is done; observers until the run
settles. A stream whose client goes away while its run is running cancels the run: the model call
and the tools stop, and the run is recorded as cancelled.

Memory stays bounded: finished runs are dropped after a short grace period (long enough for the
run store's writer to have them), and runs that wait for a person longer than `pending_ttl` are let
go: recorded to a run store, they wait on there and a decision resumes them from it; without one,
they end cancelled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from ..agent.pause import MEMORY
from ..agent.run import Run, RunMoved
from ..events import Event, RunFinished
from .errors import ApiError

FINISHED = ("ok", "error", "deadline", "max_steps", "budget", "cancelled")


class LiveRun:
    def __init__(self, run: Run, owner: str | None, agent_name: str, start: int = 0):
        self.run = run
        self.owner = owner  # the api_key_id of the key that started it; None for the operator
        self.agent_name = agent_name
        self.start = start  # events before this index happened before this server had the run
        self.finished_at: float | None = None  # noted by the registry's sweep
        self.waiting_since: float | None = None
        self._deciding: set[str] = set()

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def question(self) -> str:
        return self.run.question

    @property
    def events(self) -> list[Event]:
        return self.run.events

    @property
    def status(self) -> str:
        status = self.run.status
        return "running" if status == "moved" else status

    @property
    def finished(self) -> bool:
        return self.run.status in FINISHED and bool(self.events) and isinstance(self.events[-1], RunFinished)

    @property
    def pending(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in action.to_dict().items() if k not in ("run_id", "requested_at")}
                for action in self.run.waiting]

    def totals(self) -> dict[str, int]:
        usage = self.run.usage
        return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.tokens}

    @property
    def cost(self) -> float:
        """What its model calls cost, at the prices of whoever served them."""
        return self.run.usage.cost

    def cancel(self) -> None:
        self.run.cancel()

    async def cancelled(self, wait: float = 5.0) -> None:
        """Cancel, and give the run a moment to record that it was."""
        if self.run.cancel():
            try:
                await asyncio.wait_for(self.run.settled(), wait)
            except (asyncio.CancelledError, TimeoutError):
                pass

    async def follow(self, driver: asyncio.Task | None = None, start: int = 0) -> AsyncIterator[list[tuple[int, Event]]]:
        """The run's events from `start` on as they come, in batches of (index, event), until the run
        settles and (given) the driver is done."""
        index = start
        while True:
            async for batch in self.run.follow(index, through_pauses=driver is None):
                index = batch[-1][0] + 1
                yield batch
            if driver is None or driver.done():
                if index < len(self.events):
                    yield list(enumerate(self.events[index:], index))
                return
            await asyncio.wait([driver])  # the run settled before the driver (a decision) was done

    def decide(self, action_id: str, approve: bool, reason: str, by: str) -> asyncio.Task:
        """Approve or reject a pending action; returns the driver that carries the run on."""
        if action_id not in {a.id for a in self.run.waiting}:
            known = ", ".join(a.id for a in self.run.waiting) or "none"
            raise ApiError(404, f"run {self.id} has no pending action {action_id!r} (pending: {known})",
                           code="no_such_action")
        if action_id in self._deciding:
            raise ApiError(409, f"action {action_id} is already being decided", code="already_decided")
        self._deciding.add(action_id)

        async def drive() -> Run:
            try:
                return await (self.run.confirm(action_id, by=by) if approve else
                              self.run.reject(action_id, reason, by=by))
            except (KeyError, RunMoved) as exc:  # decided elsewhere meanwhile, or carried on by another process
                raise ApiError(409, str(exc.args[0] if exc.args else exc), code="not_waiting") from None
            finally:
                self._deciding.discard(action_id)

        return asyncio.create_task(drive())


class LiveRegistry:
    def __init__(self, *, pending_ttl: float = 3600.0, keep_finished: float = 10.0, most_finished: int = 1000):
        self.pending_ttl = pending_ttl
        self.keep_finished = keep_finished  # seconds: enough for the run store's writer to have them
        self.most_finished = most_finished
        self._runs: dict[str, LiveRun] = {}

    async def start(self, agent: Any, question: str, history: list[dict[str, Any]] | None, *, owner: str | None,
                    agent_name: str, instructions: str | None = None) -> tuple[LiveRun, asyncio.Task]:
        """Start a run; return it with the driver that ends when it settles."""
        # Every history (and system message) a client sends is client-controlled: untrusted content (R02).
        run = agent.start(question, history=history, api_key_id=owner, history_trust="untrusted",
                          instructions=instructions)
        return self.adopt(LiveRun(run, owner, agent_name)), asyncio.ensure_future(run.settled())

    def adopt(self, live: LiveRun) -> LiveRun:
        self._runs[live.id] = live
        return live

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def running(self, owner: str | None) -> int:
        return sum(1 for r in self._runs.values() if r.owner == owner and r.status == "running")

    def live(self) -> list[LiveRun]:
        return list(self._runs.values())

    def sweep(self) -> None:
        """Drop finished runs after the grace period; let go of runs that waited too long for a person."""
        now = time.monotonic()
        for live in self._runs.values():
            if live.finished and live.finished_at is None:
                live.finished_at = now
            if live.status == "waiting" and live.waiting_since is None:
                live.waiting_since = now
            elif live.status != "waiting":
                live.waiting_since = None
        finished = sorted((r.finished_at, run_id) for run_id, r in self._runs.items() if r.finished_at is not None)
        for _, run_id in finished[:max(0, len(finished) - self.most_finished)]:
            del self._runs[run_id]
        for run_id, live in list(self._runs.items()):
            if live.finished_at is not None and now - live.finished_at >= self.keep_finished:
                del self._runs[run_id]
            elif live.waiting_since is not None and now - live.waiting_since >= self.pending_ttl:
                if MEMORY.has(run_id):  # kept by no run store: nothing can carry it on once let go
                    MEMORY.forget(run_id)
                    live.run.finish("cancelled", f"no one decided within {self.pending_ttl:g} s")
                del self._runs[run_id]

    async def cancel_all(self, wait: float = 5.0) -> None:
        """Cancel every run in flight and give them a moment to record that they were."""
        await asyncio.gather(*(live.cancelled(wait) for live in self._runs.values()))
