"""What a run used (Usage) and what it may use (Limits).

Usage is counted by the Run as its events happen; Limits are checked before each model call and
each tool call (plugdeck.policy.engine.limit_reached). Both are plain dataclasses, cheap to copy
into a checkpoint and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Usage:
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    calls_admitted: int = 0  # tool calls the policy let through (parallel ones count at once)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # of the model calls, at the prices of whoever served them

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
