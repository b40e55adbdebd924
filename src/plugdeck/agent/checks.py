"""Answer checks: code that inspects the final answer before it is given (grounding, numbers).

A check sees the answer and the run (every tool result so far) and returns its verdict and the
answer to give: unchanged, with unsupported parts dropped or flagged, or replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .run import Run


@dataclass
class CheckResult:
    passed: bool
    answer: str
    details: dict[str, Any] = field(default_factory=dict)


class AnswerCheck(Protocol):
    name: str

    async def check(self, answer: str, run: Run) -> CheckResult: ...
