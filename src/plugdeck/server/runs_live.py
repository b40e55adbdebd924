"""Runs in flight: their events as they happen, and the Run object a confirmation resumes.

A request that starts a run gets a `LiveRun` and a *driver*: the task that runs it until it settles
(finishes, or waits for a person). A confirmation starts a new driver (`run.confirm`). Streams
follow a run's events until their driver is done; observers follow until the run finishes. A
stream whose client goes away while its run is running cancels the run: the model call and the
tools stop, and the run is recorded as cancelled.

Memory stays bounded: finished runs are dropped after a short grace period (long enough for the
run store's writer to have them), and runs that wait for a person longer than `pending_ttl` are
let go: recorded to a run store, they wait on there (parked) and a decision resumes them from it;
without one, they are cancelled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from ..agent.run import RunMoved
from ..events import ConfirmationAnswered, ConfirmationRequested, Event, ModelCalled, RunFinished
from .errors import ApiError


class LiveRun:
    def __init__(self, owner: str | None, agent_name: str, question: str):
        self.owner = owner  # the api_key_id of the key that started it; None for the operator
        self.agent_name = agent_name
        self.question = question
        self.id: str | None = None
        self.events: list[Event] = []
        self.run: Any = None  # the Run, once it has settled the first time
        self.finished_at: float | None = None
        self.waiting_since: float | None = None
        self.started = asyncio.Event()
        self._task: asyncio.Task | None = None  # the run's own task, to cancel it
        self._wakers: set[asyncio.Event] = set()
        self._asked: dict[str, dict[str, Any]] = {}  # actions asked and not yet answered, as the API shows them
        self._deciding: set[str] = set()

    # ---- the sink: every event of the run comes through here, on the event loop -------------------

    def record(self, event: Event) -> None:
        if self._task is None:
            # Run has no public cancel yet: the task that emits a run's first event is the run's own task.
            self.id = event.run_id
            self._task = asyncio.current_task()
            self.started.set()
        self.events.append(event)
        if isinstance(event, ConfirmationRequested):
            self._asked[event.action_id] = {"id": event.action_id, "call_id": event.call_id, "tool": event.tool,
                                            "arguments": event.arguments, "summary": event.summary,
                                            "reason": event.reason, "from_untrusted": event.from_untrusted}
            self.waiting_since = time.monotonic()
        elif isinstance(event, ConfirmationAnswered):
            self._asked.pop(event.action_id, None)
            self._deciding.discard(event.action_id)
            self.waiting_since = time.monotonic() if self._asked else None
        elif isinstance(event, RunFinished):
            self.finished_at = time.monotonic()
        for waker in self._wakers:
            waker.set()

    # ---- state ------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.finished_at is not None:
            return self.events[-1].status
        return "waiting" if self._asked else "running"

    @property
    def pending(self) -> list[dict[str, Any]]:
        return list(self._asked.values())

    def settled(self, run: Any) -> None:
        """The run settled: note actions it waits on that were asked before this copy saw them (a run
        carried on from the store asks them again without announcing them)."""
        self.run = run
        for action in run.waiting:
            if action.id not in self._asked:
                self._asked[action.id] = {k: v for k, v in action.to_dict().items() if k != "run_id"}
                self.waiting_since = time.monotonic()

    def totals(self) -> dict[str, int]:
        calls = [e for e in self.events if isinstance(e, ModelCalled)]
        prompt = sum(e.prompt_tokens for e in calls)
        completion = sum(e.completion_tokens for e in calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @property
    def cost(self) -> float:
        """What its model calls cost, at the model profile's prices."""
        return sum(e.cost for e in self.events if isinstance(e, ModelCalled))

    def cancel(self) -> None:
        if self.finished_at is None and self._task is not None and not self._task.done():
            self._task.cancel()

    async def cancelled(self, wait: float = 5.0) -> None:
        """Cancel, and give the run a moment to record that it was."""
        task = self._task
        self.cancel()
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=wait)

    # ---- following ----------------------------------------------------------------------------------

    async def follow(self, driver: asyncio.Task | None = None, start: int = 0) -> AsyncIterator[list[tuple[int, Event]]]:
        """The events from `start` on as they come, in batches of (index, event): everything that
        happened since the last batch, so a stream writes once per batch rather than once per event.
        Until the driver is done, or (no driver) until the run finishes."""
        waker = asyncio.Event()
        self._wakers.add(waker)
        if driver is not None:
            driver.add_done_callback(lambda _: waker.set())
        try:
            index = start
            while True:
                waker.clear()
                if index < len(self.events):
                    batch = list(enumerate(self.events[index:], index))
                    index += len(batch)
                    yield batch
                    continue  # more may have come while the batch was written
                if self.finished_at is not None or (driver is not None and driver.done()):
                    return
                await waker.wait()
        finally:
            self._wakers.discard(waker)

    # ---- confirmations ------------------------------------------------------------------------------

    def decide(self, action_id: str, approve: bool, reason: str, by: str) -> asyncio.Task:
        """Approve or reject a pending action; returns the driver that carries the run on."""
        if action_id not in self._asked or self.run is None:
            known = ", ".join(self._asked) or "none"
            raise ApiError(404, f"run {self.id} has no pending action {action_id!r} (pending: {known})",
                           code="no_such_action")
        if action_id in self._deciding:
            raise ApiError(409, f"action {action_id} is already being decided", code="already_decided")
        self._deciding.add(action_id)
        async def drive():
            try:
                run = await (self.run.confirm(action_id, by=by) if approve else
                             self.run.reject(action_id, reason, by=by))
            except (KeyError, RunMoved) as exc:  # decided elsewhere meanwhile, or carried on by another process
                self._deciding.discard(action_id)
                raise ApiError(409, str(exc.args[0] if exc.args else exc), code="not_waiting") from None
            self.settled(run)
            return run

        return asyncio.create_task(drive())


class LiveRegistry:
    def __init__(self, *, pending_ttl: float = 3600.0, keep_finished: float = 10.0, most_finished: int = 1000):
        self.pending_ttl = pending_ttl
        self.keep_finished = keep_finished  # seconds: enough for the run store's writer to have them
        self.most_finished = most_finished
        self._runs: dict[str, LiveRun] = {}

    async def start(self, agent: Any, question: str, history: list[dict[str, Any]] | None, *, owner: str | None,
                    agent_name: str) -> tuple[LiveRun, asyncio.Task]:
        """Start a run; return once it has its id, with the driver that runs it until it settles."""
        live = LiveRun(owner, agent_name, question)
        # Every history a client sends is client-controlled: untrusted content for the policy (R02).
        return live, await self.adopt(live, agent.run(question, history=history, sinks=[live.record],
                                                       api_key_id=owner, history_trust="untrusted"))

    async def adopt(self, live: LiveRun, settles) -> asyncio.Task:
        """Drive a run with `settles` (a coroutine that returns the Run once it settles), and keep it
        here once its first event is in."""

        async def drive():
            run = await settles
            if run is not None:
                live.settled(run)
            return run

        driver = asyncio.create_task(drive())
        driver.add_done_callback(lambda _: live.started.set())
        await live.started.wait()  # the run's first event, or the driver's end
        if live.id is None:
            driver.result()  # it ended before the run began: a bug of ours (or a refusal), surfaced
            return driver
        self._runs[live.id] = live
        return driver

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def running(self, owner: str | None) -> int:
        return sum(1 for r in self._runs.values() if r.owner == owner and r.status == "running")

    def live(self) -> list[LiveRun]:
        return list(self._runs.values())

    def sweep(self) -> None:
        """Drop finished runs after the grace period; let go of runs that waited too long for a person."""
        now = time.monotonic()
        finished = sorted((r.finished_at, run_id) for run_id, r in self._runs.items() if r.finished_at is not None)
        for _, run_id in finished[:max(0, len(finished) - self.most_finished)]:
            del self._runs[run_id]
        for run_id, live in list(self._runs.items()):
            if live.finished_at is not None and now - live.finished_at > self.keep_finished:
                del self._runs[run_id]
            elif live.waiting_since is not None and now - live.waiting_since > self.pending_ttl:
                live.cancel()  # a parked run waits on in the run store; an unrecorded one ends cancelled
                del self._runs[run_id]

    async def cancel_all(self, wait: float = 5.0) -> None:
        """Cancel every run in flight and give them a moment to record that they were."""
        await asyncio.gather(*(live.cancelled(wait) for live in self._runs.values()))
