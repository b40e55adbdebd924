"""What a run used (Usage) and what it may use (Limits).

Usage is counted by the Run as its events happen; Limits are checked before each model call and
each tool call (plugdeck.policy.engine.limit_reached). Both are plain dataclasses, cheap to copy
into a checkpoint and back.

Limits come from three places, and the strictest wins: the policy (`[policy.budgets]` in TOML),
the Agent (`Agent(limits=...)`) and one run (`agent.run(q, limits=...)`); `a.tighter(b)` merges two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from .errors import UserError


@dataclass
class Usage:
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    calls_admitted: int = 0  # tool calls the policy let through (parallel ones count at once)
    prompt_tokens: int = 0  # cached ones included
    completion_tokens: int = 0  # reasoning ones included
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0  # of the model calls, at the prices of whoever served them
    estimated_calls: int = 0  # model calls whose server sent no usage: their tokens are estimates
    unpriced_calls: int = 0  # model calls of a model with no known price: they add nothing to cost

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class LimitsError(UserError, ValueError):
    """A limit that cannot be one: an unknown name, a wrong type, zero or less."""


# The whole numbers among the limits; the others may be fractions.
_COUNTS = ("max_steps", "max_tool_calls", "max_tokens")


@dataclass(frozen=True)
class Limits:
    """What a run may use; None means no limit of that kind.

    max_steps: model calls; max_tool_calls: tool calls the policy let through; max_tokens: prompt plus
    completion tokens; max_cost: the model calls' cost, at the model profile's prices; max_seconds: the
    run's wall-clock time, a person's thinking time excluded.
    """

    max_steps: int | None = None
    max_tool_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            whole = name in _COUNTS
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                kind = "a whole number" if whole else "a number"
                raise LimitsError(f"{name} must be {kind} or None, not {value!r}")
            if value <= 0:
                raise LimitsError(f"{name} must be more than 0, not {value!r}")

    def tighter(self, other: Limits | None) -> Limits:
        """The stricter of each limit of the two (a limit either one sets applies)."""
        if other is None:
            return self
        merged: dict[str, Any] = {}
        for name in LIMIT_NAMES:
            mine, theirs = getattr(self, name), getattr(other, name)
            merged[name] = theirs if mine is None else mine if theirs is None else min(mine, theirs)
        return Limits(**merged)

    def to_dict(self) -> dict[str, float]:
        """Only the limits that are set: {"max_steps": 10}."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        """From {"max_steps": 10, ...}; an unknown name is refused (a typo must not lift a limit)."""
        unknown = sorted(set(data) - set(LIMIT_NAMES))
        if unknown:
            raise LimitsError(f"unknown limit {', '.join(map(repr, unknown))} (known: {', '.join(LIMIT_NAMES)})")
        return cls(**data)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Limits))
