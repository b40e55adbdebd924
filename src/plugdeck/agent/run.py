"""A Run: the ordered events of one request, and the running totals the CLI and store show."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from typing import Any, Callable

from ..events import (AnswerGiven, ConfirmationAnswered, ConfirmationRequested, Event, ModelCalled, RunFinished,
                      RunStarted, ToolFinished)
from ..policy.load import Policy
from .confirm import Confirmer, PendingAction

Sink = Callable[[Event], None]


def new_run_id() -> str:
    # Time-ordered, so ids sort like the runs happened; random tail keeps them unique.
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:8]}"


class Run:
    def __init__(self, question: str, *, run_id: str | None = None, sinks: list[Sink] | tuple = ()):
        self.id = run_id or new_run_id()
        self.question = question
        self.events: list[Event] = []
        self.messages: list[dict[str, Any]] = []  # the conversation, without the system prompt
        self.answer: str | None = None
        self.status = "running"
        self.error: str | None = None
        self.started = time.perf_counter()
        self.steps = self.model_calls = self.tool_calls = 0
        self.calls_admitted = 0  # tool calls the policy let through (parallel ones count at once)
        self.prompt_tokens = self.completion_tokens = 0
        self._sinks = list(sinks)
        self.confirmer: Confirmer | None = None
        self.policy = Policy()
        self.prices = (0.0, 0.0)  # per million prompt / completion tokens
        self.pending: dict[str, tuple[PendingAction, asyncio.Future]] = {}
        self.deadline_scope: asyncio.Timeout | None = None  # paused while a person decides
        self._settled: asyncio.Event | None = None
        self._call_watch: dict[str, asyncio.Event] = {}  # calls someone waits to see finish
        self._paused_deadline: float | None = None
        self._task: asyncio.Task | None = None

    def emit(self, cls: type[Event], **fields: Any) -> Event:
        event = cls(run_id=self.id, t=time.perf_counter() - self.started, **fields)
        if cls is ModelCalled:
            self.model_calls += 1
            self.prompt_tokens += event.prompt_tokens
            self.completion_tokens += event.completion_tokens
        elif cls is ToolFinished:
            self.tool_calls += 1
            if event.call_id in self._call_watch:
                self._call_watch.pop(event.call_id).set()
        elif cls is AnswerGiven:
            self.answer = event.text
        self.events.append(event)
        for sink in self._sinks:
            sink(event)
        return event

    def finish(self, status: str, error: str | None = None) -> Event:
        self.status, self.error = status, error
        return self.emit(
            RunFinished,
            status=status,
            answer=self.answer,
            error=error,
            steps=self.steps,
            model_calls=self.model_calls,
            tool_calls=self.tool_calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            duration=time.perf_counter() - self.started,
        )

    # ---- confirmation ---------------------------------------------------------------------------

    async def request_confirmation(self, action: PendingAction) -> bool:
        """Ask the confirmer, or pause the run until confirm()/reject() is called."""
        self.emit(ConfirmationRequested, action_id=action.id, call_id=action.call_id, tool=action.tool,
                  arguments=action.arguments, summary=action.summary, reason=action.reason,
                  from_untrusted=action.from_untrusted)
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        self._pause_deadline()
        if self.confirmer is not None:
            answer = self.confirmer(action)
            approved = bool(await answer if inspect.isawaitable(answer) else answer)
            by, note = getattr(self.confirmer, "label", "confirmer"), ""
        else:
            future = loop.create_future()
            self.pending[action.id] = (action, future)
            self.status = "waiting"
            self._signal_settled()
            try:
                approved, by, note = await future
            finally:
                self.pending.pop(action.id, None)
                self.status = "waiting" if self.pending else "running"
        self._resume_deadline(loop.time() - asked_at)
        self.emit(ConfirmationAnswered, action_id=action.id, approved=approved, by=by, note=note)
        return approved

    # Time spent waiting for a person does not count against the run's deadline.
    def _pause_deadline(self) -> None:
        scope = self.deadline_scope
        if scope is not None and scope.when() is not None:
            self._paused_deadline = scope.when()
            scope.reschedule(None)

    def _resume_deadline(self, waited: float) -> None:
        if self._paused_deadline is not None and not self.pending:
            self.deadline_scope.reschedule(self._paused_deadline + waited)
            self._paused_deadline = None

    @property
    def waiting(self) -> list[PendingAction]:
        return [action for action, _ in self.pending.values()]

    async def confirm(self, action_id: str, *, by: str = "person") -> Run:
        """Approve a pending action; resume the run until it finishes or waits again."""
        return await self._answer(action_id, True, by, "")

    async def reject(self, action_id: str, reason: str = "", *, by: str = "person") -> Run:
        """Refuse a pending action; the model is told, and the run goes on."""
        return await self._answer(action_id, False, by, reason)

    async def _answer(self, action_id: str, approved: bool, by: str, note: str) -> Run:
        if action_id not in self.pending:
            known = ", ".join(self.pending) or "none"
            raise KeyError(f"no pending action {action_id!r} in run {self.id} (pending: {known})")
        action, future = self.pending[action_id]
        if len(self.pending) > 1:
            # Other actions still wait: return once this one has been carried out (or refused).
            done = self._call_watch[action.call_id] = asyncio.Event()
            future.set_result((approved, by, note))
            await done.wait()
            return self
        self._settled.clear()
        future.set_result((approved, by, note))
        return await self.settled()

    def start(self, coroutine) -> None:
        self._settled = asyncio.Event()
        self._task = asyncio.create_task(coroutine)
        self._task.add_done_callback(lambda _: self._signal_settled())

    def _signal_settled(self) -> None:
        if self._settled is not None:
            self._settled.set()

    async def settled(self) -> Run:
        """Wait until the run finishes or waits for a person."""
        await self._settled.wait()
        if self._task.done():
            self._task.result()  # surface a bug of ours rather than hide it
        return self

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.prices[0] + self.completion_tokens * self.prices[1]) / 1_000_000

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tool_results(self) -> list[ToolFinished]:
        return [e for e in self.events if isinstance(e, ToolFinished)]

    @property
    def model(self) -> str:
        started = next((e for e in self.events if isinstance(e, RunStarted)), None)
        return started.model if started else ""

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.status!r}, answer={self.answer!r})"
