"""Fallback chains (R29): when one deployment fails, the next in the profile's chain answers.

    [models.local]
    base_url = "http://127.0.0.1:8000/v1"
    model = "qwen2.5-7b-instruct"
    context_window = 32768
    fallbacks = ["hosted"]          # other profiles, tried in order

A deployment (an endpoint and a model) that fails COOLDOWN_AFTER times within FAILURE_WINDOW
seconds is cooled down for COOLDOWN seconds: no request goes to it then. After that, one request
probes it; if the probe fails it cools down again, if it answers it is back. Health is kept per
process for each deployment, so every agent built in a server shares what it learned.

There is one retry layer per deployment (its own retries inside its deadline, R28); the chain moves
on only once a deployment has given up, and only before any text of the answer was handed on: a
failure after that is the run's error, as a half-streamed answer cannot be taken back. A
context-length error moves only to deployments with a larger `context_window`: a smaller or
unknown one would fail the same way.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from ..tools import ToolSpec
from .base import Model, ModelError, ModelResponse, TextChunk

COOLDOWN_AFTER = 3  # failures ...
FAILURE_WINDOW = 60.0  # ... within this many seconds
COOLDOWN = 30.0  # seconds a failing deployment gets no requests

_CONTEXT_LENGTH = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|input is too long", re.I)


def is_context_length(error: ModelError) -> bool:
    """The request was too long for the model: the same request fails again on a same-size model."""
    return getattr(error, "status", None) in (400, 413, 422) and bool(_CONTEXT_LENGTH.search(str(error)))


@dataclass
class Health:
    """What this process knows about one deployment."""

    failures: deque = field(default_factory=deque)  # times of recent failures
    cooled_until: float = 0.0
    probing: bool = False  # a probe after a cooldown is under way: others keep away meanwhile

    def available(self, now: float) -> bool:
        return now >= self.cooled_until and not self.probing

    def failed(self, now: float, after: int, window: float, cooldown: float) -> None:
        was_probe, self.probing = self.probing, False
        self.failures.append(now)
        while self.failures and self.failures[0] < now - window:
            self.failures.popleft()
        if was_probe or len(self.failures) >= after:
            self.cooled_until = now + cooldown
            self.failures.clear()

    def succeeded(self) -> None:
        self.failures.clear()
        self.probing = False
        self.cooled_until = 0.0


# Per deployment key ("base_url model"), for the whole process.
_HEALTH: dict[str, Health] = {}


def deployment_key(model: Model) -> str:
    return f"{getattr(model, 'base_url', '')} {getattr(model, 'model', model.name)}"


def health_of(model: Model) -> Health:
    return _HEALTH.setdefault(deployment_key(model), Health())


class FallbackModel:
    """Models tried in order; each entry is (model, context_window or None)."""

    def __init__(self, chain: list[tuple[Model, int | None]], *, name: str | None = None,
                 cooldown_after: int = COOLDOWN_AFTER, window: float = FAILURE_WINDOW, cooldown: float = COOLDOWN,
                 clock: Callable[[], float] = time.monotonic):
        if not chain:
            raise ValueError("a fallback chain needs at least one model")
        self.chain = chain
        self.name = name or chain[0][0].name
        self.prices = getattr(chain[0][0], "prices", (0.0, 0.0))
        self.cooldown_after, self.window, self.cooldown = cooldown_after, window, cooldown
        self.clock = clock

    def __repr__(self) -> str:
        return f"FallbackModel({' -> '.join(m.name for m, _ in self.chain)})"

    async def stream(self, messages: list[dict[str, Any]], tools: list[ToolSpec]
                     ) -> AsyncIterator[TextChunk | ModelResponse]:
        failures: list[str] = []
        too_long_for: int | None = None  # the context window a context-length error was seen at
        last_error: ModelError | None = None
        for model, window in self.chain:
            if too_long_for is not None and (window is None or window <= too_long_for):
                failures.append(f"{model.name}: skipped, its context window is not larger")
                continue
            health = health_of(model)
            now = self.clock()
            if not health.available(now):
                failures.append(f"{model.name}: cooling down after repeated failures")
                continue
            if health.cooled_until:
                health.probing = True  # the first request after a cooldown
            started = False
            try:
                async for item in model.stream(messages, tools):
                    if isinstance(item, ModelResponse):
                        health.succeeded()
                        item.served_by = model.name
                        item.prices = getattr(model, "prices", None)
                        item.fallbacks = failures
                    started = True
                    yield item
                return
            except ModelError as exc:
                if not started and is_context_length(exc):
                    health.succeeded()  # the deployment answered; the request was too long for it
                else:
                    health.failed(self.clock(), self.cooldown_after, self.window, self.cooldown)
                if started:
                    raise  # text was handed on already: another model cannot take it back
                if is_context_length(exc):
                    too_long_for = window or 0
                failures.append(f"{model.name}: {exc}")
                last_error = exc
            except BaseException:
                health.probing = False  # cancelled: the probe did not decide anything
                raise
        reasons = "; ".join(failures)
        raise ModelError(f"no model in the fallback chain could answer ({reasons})",
                         status=getattr(last_error, "status", None))

    async def aclose(self) -> None:
        for model, _ in self.chain:
            if hasattr(model, "aclose"):
                await model.aclose()
