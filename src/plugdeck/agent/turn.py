"""A Turn: what the agent needs while it carries a run on, from its start (or a resume) until the
run finishes or waits for a person. The Run is the record; the Turn is the working state beside it:
the policy and limits, the model's prices, the conversation as the model reads it, who may be asked
to confirm, the book that keeps pauses (the run store, or memory), and the deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..models.pricing import charge
from ..policy.load import Policy
from ..usage import Limits
from .confirm import Confirmer, PendingAction
from .run import Run


@dataclass
class Turn:
    run: Run
    policy: Policy
    limits: Limits
    messages: list[dict[str, Any]]  # what the model reads, system prompt included
    book: Any  # where a pause is kept (plugdeck.agent.pause.Book)
    confirmer: Confirmer | None = None  # asked at once, instead of pausing the run
    prices: Any = (0.0, 0.0)  # the model's (plugdeck.models.pricing): per million prompt / completion tokens
    planner: str = "loop"
    max_steps: int = 10
    setup: dict[str, Any] | None = None  # how to rebuild the agent elsewhere (AgentSetup fields)
    deps: Any = None  # the application's dependencies, for tools that take a RunContext
    driver: str = field(default_factory=lambda: uuid.uuid4().hex)  # this process's claim on the run
    booked: set[str] = field(default_factory=set)  # ids of actions the book knows (claimed through it)
    deadline_scope: asyncio.Timeout | None = None
    _paused_until: float | None = None

    def charge(self, response: Any) -> dict[str, Any]:
        """A model call's tokens and cost (ModelCalled's usage fields) at the prices of whoever served it:
        the model's, or the deployment's a fallback chain answered from."""
        return charge(self.prices if getattr(response, "prices", None) is None else response.prices, response)

    async def ask(self, action: PendingAction) -> tuple[bool, str]:
        """The confirmer's answer (approved, by whom). The time a person takes does not count against
        the run's deadline."""
        scope = self.deadline_scope
        when = scope.when() if scope is not None else None
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        if when is not None:
            scope.reschedule(None)
        try:
            answer = self.confirmer(action)
            approved = bool(await answer if inspect.isawaitable(answer) else answer)
        finally:
            if when is not None:
                scope.reschedule(when + loop.time() - asked_at)
        return approved, getattr(self.confirmer, "label", "confirmer")

    def deadline_left(self) -> float | None:
        """Seconds of the deadline still to use; None without a deadline."""
        scope = self.deadline_scope
        if scope is None or scope.when() is None:
            return None
        return max(0.0, scope.when() - asyncio.get_running_loop().time())
