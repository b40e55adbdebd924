"""A Run: the record of one request. Its events in order, the conversation, its status, its Usage,
the actions it waits on, and its answer.

A Run is written only through its own methods (the agent calls them as the run goes on); everyone
else reads it, follows its events (`follow`), cancels it (`cancel`) or decides what it waits on
(`confirm` / `reject`, which hand the decision to the agent that made it: see plugdeck.agent.pause).
Prices, the run store and the planner's working state live outside it (plugdeck.agent.turn).

Statuses: running -> ok | error | deadline | max_steps | budget | cancelled, or running -> waiting
(its turn ended with actions for a person to decide) -> running (resumed) -> ...
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Literal

from ..errors import PlugdeckError
from ..events import AnswerGiven, Event, ModelCalled, RunFinished, RunStarted, TextDelta, ToolFinished
from ..usage import Usage
from .confirm import PendingAction
from .pause import ActionNotPending, RunNotWaiting

Sink = Callable[[Event], None]
Status = Literal["running", "waiting", "ok", "error", "deadline", "max_steps", "budget", "cancelled", "moved"]
# How a Run hands a decision to whoever carries it on: (run id, {action id: approved}, by, notes) -> Run.
Resumer = Callable[[str, dict[str, bool], str, dict[str, str]], Awaitable["Run | None"]]
SETTLED = ("waiting", "ok", "error", "deadline", "max_steps", "budget", "cancelled", "moved")


class RunMoved(PlugdeckError):
    """Another process carries this run on now; decide through the run store (Agent.resume) instead."""


def new_run_id() -> str:
    # Time-ordered, so ids sort like the runs happened; random tail keeps them unique.
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:8]}"


class Run:
    def __init__(self, question: str, *, run_id: str | None = None, sinks: Iterable[Sink] = (),
                 api_key_id: str | None = None, answer_checked: bool = False, resumer: Resumer | None = None,
                 past: list[Event] | None = None, usage: Usage | None = None, started_at: float | None = None):
        """`past`, `usage`, `started_at` (wall clock): a run restored from the run store to be carried on."""
        self.id = run_id or new_run_id()
        self.question = question
        self.api_key_id = api_key_id  # who runs it: a label the server sets, never a key
        self.events: list[Event] = list(past or [])
        self.messages: list[dict[str, Any]] = []  # the conversation, without the system prompt
        self.status: Status = "running"
        self.answer: str | None = next((e.text for e in reversed(self.events) if isinstance(e, AnswerGiven)), None)
        self.output: Any = None  # the validated structured answer, with output_type
        self.error: str | None = None
        self.usage = usage or Usage()
        self.waiting: list[PendingAction] = []
        # Event times count from the run's start, also when it is carried on later or elsewhere.
        self._started = time.perf_counter() - (time.time() - started_at if started_at else 0.0)
        self._sinks = list(sinks)
        # When answer checks may change the answer, the model's text streams as a draft no surface shows;
        # every surface shows AnswerGiven's checked text instead.
        self._answer_checked = answer_checked
        self._resumer = resumer
        self._task: asyncio.Task | None = None
        self._wakers: set[asyncio.Event] = set()

    # ---- written by the agent as the run goes on ---------------------------------------------------

    def emit(self, cls: type[Event], **fields: Any) -> Event:
        event = cls(run_id=self.id, t=time.perf_counter() - self._started, **fields)
        usage = self.usage
        if cls is ModelCalled:
            usage.model_calls += 1
            usage.prompt_tokens += event.prompt_tokens
            usage.completion_tokens += event.completion_tokens
            usage.cached_tokens += event.cached_tokens
            usage.reasoning_tokens += event.reasoning_tokens
            usage.cost += event.cost
            usage.estimated_calls += event.estimated
            usage.unpriced_calls += not event.priced
        elif cls is ToolFinished:
            usage.tool_calls += 1
        elif cls is AnswerGiven:
            self.answer = event.text
        elif cls is TextDelta and self._answer_checked and event.channel == "text":
            event.channel = "draft"
        self.events.append(event)
        for sink in self._sinks:
            sink(event)
        self._wake()
        return event

    def finish(self, status: Status, error: str | None = None) -> Event:
        self.status, self.error, self.waiting = status, error, []
        usage = self.usage
        return self.emit(RunFinished, status=status, answer=self.answer, error=error, steps=usage.steps,
                         model_calls=usage.model_calls, tool_calls=usage.tool_calls,
                         prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                         duration=time.perf_counter() - self._started, cost=usage.cost)

    def wait_for(self, actions: list[PendingAction]) -> None:
        """The turn ended with these actions for a person to decide (their ConfirmationRequested is in)."""
        self.status, self.waiting = "waiting", list(actions)
        self._wake()

    def carry_on(self) -> None:
        """A decision came: the run goes on (resumed)."""
        self.status, self.waiting = "running", []

    def moved(self) -> None:
        """Another process carries the run on: this copy stops here and writes nothing more."""
        self.status = "moved"
        self._wake()

    def keep_messages(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages

    def keep_output(self, output: Any) -> None:
        self.output = output

    def drive(self, work: Awaitable[None]) -> asyncio.Task:
        """Run `work` (the agent's turn) as this run's task, the one `cancel()` stops."""
        self._task = asyncio.ensure_future(work)
        self._task.add_done_callback(lambda _: self._wake())
        return self._task

    async def settled(self) -> Run:
        """Wait until this turn ends: the run finished, or waits for a person. Cancelling the caller
        cancels the run."""
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:
                if not self._task.done():  # the caller was cancelled, not the run: stop the run too
                    self._task.cancel()
                    await asyncio.gather(self._task, return_exceptions=True)
                raise
        return self

    # ---- for everyone ------------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Stop the run's turn in progress (it is recorded as cancelled). False if none is in progress."""
        if self._task is None or self._task.done():
            return False
        self._task.cancel()
        return True

    async def follow(self, start: int = 0, *, through_pauses: bool = False) -> AsyncIterator[list[tuple[int, Event]]]:
        """The events from index `start` on as they come, in batches of (index, event): everything that
        happened since the last batch. Ends once the run has settled (finished or, unless
        `through_pauses`, waits for a person) and every event is out."""
        ends = SETTLED if not through_pauses else tuple(s for s in SETTLED if s != "waiting")
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            index = start
            while True:
                waker.clear()
                if index < len(self.events):
                    batch = list(enumerate(self.events[index:], index))
                    index += len(batch)
                    yield batch
                    continue  # more may have come while the batch was written
                if self.status in ends and (self._task is None or self._task.done()):
                    return
                await waker.wait()
        finally:
            self._wakers.discard(waker)

    def _wake(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def confirm(self, action_id: str, *, by: str = "person") -> Run:
        """Approve a pending action; the run goes on until it finishes or waits again."""
        return await self._decide(action_id, True, by, "")

    async def reject(self, action_id: str, reason: str = "", *, by: str = "person") -> Run:
        """Refuse a pending action; the model is told, and the run goes on."""
        return await self._decide(action_id, False, by, reason)

    async def _decide(self, action_id: str, approved: bool, by: str, note: str) -> Run:
        if self.status == "moved":
            raise RunMoved(f"run {self.id} is carried on by another process now; decide through the run store "
                           "(Agent.resume) instead")
        if action_id not in {a.id for a in self.waiting}:
            known = ", ".join(a.id for a in self.waiting) or "none"
            raise KeyError(f"no pending action {action_id!r} in run {self.id} (pending: {known})")
        if self._resumer is None:
            raise RunMoved(f"run {self.id} has no agent to carry it on; use Agent.resume")
        self.status = "running"  # deciding: followers wait for the turn this decision starts
        try:
            resumed = await self._resumer(self.id, {action_id: approved}, by, {action_id: note})
        except (RunNotWaiting, ActionNotPending) as exc:  # the book says the run went on elsewhere
            self.moved()
            raise RunMoved(f"run {self.id} was carried on by another process: {exc}") from None
        except BaseException:
            if self.status == "running" and (self._task is None or self._task.done()):
                self.status = "waiting"  # the decision did not take: the run still waits
                self._wake()
            raise
        if resumed is None:  # another process carries it on; the decision is recorded for it
            self.moved()
            raise RunMoved(f"run {self.id} is carried on by another process now; the decision is recorded there")
        return self

    # ---- read-outs ---------------------------------------------------------------------------------

    def records_to(self, target: object) -> bool:
        """Whether one of the run's sinks belongs to `target` (e.g. a run store's `record`)."""
        return any(getattr(sink, "__self__", None) is target for sink in self._sinks)

    @property
    def in_turn(self) -> bool:
        """Whether a turn of the run is under way in this process."""
        return self._task is not None and not self._task.done()

    @property
    def cost(self) -> float:
        return self.usage.cost

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

    @property
    def started_at(self) -> float | None:
        started = next((e for e in self.events if isinstance(e, RunStarted)), None)
        return started.started_at if started else None

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.status!r}, answer={self.answer!r})"
