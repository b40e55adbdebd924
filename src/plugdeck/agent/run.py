"""A Run: the ordered events of one request, and the running totals the CLI and store show."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

from ..events import AnswerGiven, Event, ModelCalled, RunFinished, RunStarted, ToolFinished

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
        self.prompt_tokens = self.completion_tokens = 0
        self._sinks = list(sinks)

    def emit(self, cls: type[Event], **fields: Any) -> Event:
        event = cls(run_id=self.id, t=time.perf_counter() - self.started, **fields)
        if cls is ModelCalled:
            self.model_calls += 1
            self.prompt_tokens += event.prompt_tokens
            self.completion_tokens += event.completion_tokens
        elif cls is ToolFinished:
            self.tool_calls += 1
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
