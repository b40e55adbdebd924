"""Answer checks: code that inspects the final answer before it is given (grounding, numbers).

A check sees the answer and the run (every tool result so far) and returns its verdict and the
answer to give: unchanged, with unsupported parts dropped or flagged, or replaced. The types live
here, below the agent, so that policy's number check and a plugin's grounding check can implement
them without importing the agent that runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from .events import Event


@dataclass
class CheckResult:
    passed: bool
    answer: str
    details: dict[str, Any] = field(default_factory=dict)


class CheckedRun(Protocol):
    """What a check may read of the run (the agent's Run has all of it)."""

    @property
    def question(self) -> str: ...

    @property
    def messages(self) -> Sequence[dict[str, Any]]: ...

    @property
    def events(self) -> Sequence[Event]: ...


class AnswerCheck(Protocol):
    name: str

    async def check(self, answer: str, run: CheckedRun) -> CheckResult: ...
