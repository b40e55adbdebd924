"""A Run: the ordered events of one request, the running totals the CLI and store show, and the
actions it waits on.

A run without a `confirm` callback pauses when an action needs a person's OK, and settles once
every call of its turn has finished or waits. Recorded to a RunStore, it is then *parked* there
(a checkpoint and its pending actions), so that any process can carry it on (Agent.resume) after
a restart or on another replica. This copy stays live meanwhile: `confirm()`/`reject()` carry it
on here, unless another process took it over first (then they raise RunMoved).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from ..events import (AnswerGiven, ConfirmationAnswered, ConfirmationRequested, Event, ModelCalled, RunFinished,
                      RunStarted, TextDelta, ToolFinished)
from ..policy.load import Policy
from ..tools import ToolError
from .confirm import Confirmer, PendingAction

Sink = Callable[[Event], None]
log = logging.getLogger("plugdeck.agent")


class RunMoved(Exception):
    """Another process has taken this run over; carry it on from the store instead (Agent.resume)."""


def new_run_id() -> str:
    # Time-ordered, so ids sort like the runs happened; random tail keeps them unique.
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:8]}"


class Run:
    def __init__(self, question: str, *, run_id: str | None = None, sinks: list[Sink] | tuple = (),
                 api_key_id: str | None = None):
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
        self.spent = 0.0  # the cost of the model calls so far
        self.api_key_id = api_key_id  # who runs it: a label the server sets, never a key
        # Set by the Agent when answer checks may change the answer: the model's text then streams as a
        # draft, which no surface shows; every surface shows AnswerGiven's checked text instead.
        self.answer_checked = False
        # Set by the Agent; what a checkpoint needs to carry the run on elsewhere.
        self.store = None  # the RunStore it is recorded to, which keeps its checkpoints
        self.setup: dict[str, Any] | None = None  # how to rebuild the agent (AgentSetup fields)
        self.planner = "loop"
        self.max_steps = 10
        self.loop_messages: list[dict[str, Any]] = []  # what the model reads, system prompt included
        self.driver = uuid.uuid4().hex  # this copy's claim to carry the run on (see RunStore.take_over)
        self.active_calls = 0  # tool calls under way, those waiting for a person included
        self.busy = 0  # planner work besides tool calls (the plan planner reading its plan)
        self.parked = False  # waiting, with its checkpoint in the store
        self._parking: asyncio.Task | None = None
        self.stored_actions: set[str] = set()  # ids of pending actions the store knows about
        self._detached = False
        self.pending: dict[str, tuple[PendingAction, asyncio.Future]] = {}
        self.deadline_scope: asyncio.Timeout | None = None  # paused while a person decides
        self._settled: asyncio.Event | None = None
        self._call_watch: dict[str, asyncio.Event] = {}  # calls someone waits to see finish
        self._paused_deadline: float | None = None
        self._task: asyncio.Task | None = None

    def emit(self, cls: type[Event], **fields: Any) -> Event:
        event = cls(run_id=self.id, t=time.perf_counter() - self.started, **fields)
        if cls is ModelCalled:
            if "cost" not in fields:
                event.cost = self.price(event.prompt_tokens, event.completion_tokens)
            self.model_calls += 1
            self.prompt_tokens += event.prompt_tokens
            self.completion_tokens += event.completion_tokens
            self.spent += event.cost
        elif cls is ToolFinished:
            self.tool_calls += 1
            if event.call_id in self._call_watch:
                self._call_watch.pop(event.call_id).set()
        elif cls is AnswerGiven:
            self.answer = event.text
        elif cls is TextDelta and self.answer_checked and event.channel == "text":
            event.channel = "draft"
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
            cost=self.spent,
        )

    # ---- confirmation ---------------------------------------------------------------------------

    async def request_confirmation(self, action: PendingAction, *, announce: bool = True) -> bool:
        """Ask the confirmer, or pause the run until confirm()/reject() (or another process) decides.

        `announce=False`: the request was recorded before (a run carried on from its checkpoint)."""
        if announce:
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
            self.settle_if_quiet()
            try:
                approved, by, note = await future
            finally:
                self.pending.pop(action.id, None)
                if not self._detached:
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

    def deadline_left(self) -> float | None:
        """Seconds of the deadline still to use (paused or not); None without a deadline."""
        now = asyncio.get_running_loop().time()
        when = self._paused_deadline
        if when is None and self.deadline_scope is not None:
            when = self.deadline_scope.when()
        return None if when is None else max(0.0, when - now)

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
        await self._parked_or_not()
        if self._detached:
            raise self._moved()
        if action_id not in self.pending:
            known = ", ".join(self.pending) or "none"
            raise KeyError(f"no pending action {action_id!r} in run {self.id} (pending: {known})")
        if self.store is not None and action_id in self.stored_actions:
            # The store decides who carries the run on: this copy, unless another process took over.
            outcome = await asyncio.to_thread(self.store.decide, self.id, action_id, approved, by=by, note=note,
                                              driver=self.driver)
            if outcome == "moved":
                self._detach()
                raise self._moved()
        self.parked = False
        action, future = self.pending[action_id]
        self._settled.clear()  # from here, settled() waits for the run to finish or wait again
        if len(self.pending) > 1:
            # Other actions still wait: return once this one has been carried out (or refused).
            done = self._call_watch[action.call_id] = asyncio.Event()
            future.set_result((approved, by, note))
            await done.wait()
            return self
        future.set_result((approved, by, note))
        return await self.settled()

    # ---- settling and parking -------------------------------------------------------------------

    @asynccontextmanager
    async def calling(self) -> AsyncIterator[None]:
        """Around each tool call: the run settles only when every call has finished or waits."""
        self.active_calls += 1  # counted at once: a checkpoint being taken now must not leave this call out
        try:
            if self.parked or self._parking is not None:
                await self._hold()
            yield
        finally:
            self.active_calls -= 1
            self.settle_if_quiet()

    def settle_if_quiet(self) -> None:
        """Once every call under way waits for a person: settle (and park, with a store)."""
        if not self._quiet() or self._parking is not None or self.parked or self._detached:
            return
        if self.store is None:
            self._signal_settled()
        else:
            self._parking = asyncio.get_running_loop().create_task(self._park())

    def _quiet(self) -> bool:
        return bool(self.pending) and self.active_calls <= len(self.pending) and not self.busy

    async def _park(self) -> None:
        from ..ops.runstore import RunStoreError
        from .checkpoint import checkpoint_of

        try:
            await asyncio.sleep(0)  # let calls that were just scheduled start before deciding we are quiet
            if not self._quiet():
                return
            data, actions = checkpoint_of(self)
            stored = self.store.park(self.id, self.driver, data, actions)
            done, _ = await asyncio.wait({stored}, timeout=self.store.timeout)
            if not done:
                log.warning("run %s waits for a person; the run store is slow to take its checkpoint", self.id)
                self._signal_settled()  # the caller hears that it waits; confirming it waits for the store
            outcome = await stored
        except RunStoreError as exc:
            log.warning("run %s waits for a person, but its checkpoint was not stored (%s); it can be carried on "
                        "only in this process", self.id, exc)
            self._signal_settled()
            return
        finally:
            self._parking = None
        if outcome.moved:
            self._detach()
            return
        self.stored_actions.update(a["id"] for a in actions)
        if outcome.decisions:  # given elsewhere while this copy was busy: carry them out here
            for action_id, decision in outcome.decisions.items():
                entry = self.pending.get(action_id)
                if entry is not None and not entry[1].done():
                    entry[1].set_result(decision)
            return
        self.parked = True
        self._signal_settled()

    async def _parked_or_not(self) -> None:
        """Wait for a checkpoint under way; fail (RunStoreUnavailable) rather than wait past the store's timeout."""
        if self._parking is None:
            return
        from ..ops.runstore import RunStoreUnavailable

        try:
            await asyncio.wait_for(asyncio.shield(self._parking), self.store.timeout)
        except TimeoutError:
            raise RunStoreUnavailable(f"the run store at {self.store.where} has not taken the checkpoint of run "
                                      f"{self.id} yet; try again") from None

    async def _hold(self) -> None:
        """Work is about to start on a parked run: take it back from the store first, or learn it moved."""
        await self._parked_or_not()
        if not self.parked:
            return
        if await asyncio.to_thread(self.store.hold, self.id, driver=self.driver) == "moved":
            self._detach()
            raise self._moved()
        self.parked = False

    def _moved(self) -> RunMoved:
        return RunMoved(f"run {self.id} is carried on by another process now; decide through the run store "
                        "(Agent.resume) instead")

    def _detach(self) -> None:
        """Another process carries the run on: this copy stops without writing anything more."""
        self._detached = self.parked = True
        self.status = "moved"
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()
        self._signal_settled()

    @property
    def detached(self) -> bool:
        return self._detached

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
        if self._task.done() and not self._detached:
            self._task.result()  # surface a bug of ours rather than hide it
        return self

    async def claim(self, action_id: str) -> bool:
        """Claim an approved action for execution in the store; only one process ever gets True."""
        if self.store is None or action_id not in self.stored_actions:
            return True  # known to this process only: its future was the single decision
        from ..ops.runstore import RunStoreError

        try:
            return await asyncio.to_thread(self.store.claim, action_id, driver=self.driver)
        except RunStoreError as exc:
            raise ToolError(f"not run: the run store could not make sure this action runs only once ({exc})",
                            "store_unavailable") from None

    def price(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What these tokens cost at the run's prices (per million tokens)."""
        return (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1_000_000

    @property
    def cost(self) -> float:
        return self.spent

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
