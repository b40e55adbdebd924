"""Pending actions: a tool call that waits for a person's OK before it runs.

The approval is bound to the exact tool and arguments of one call (the action id hashes them), is
used once, must come within CONFIRMATION_TTL of the question, and its id travels to the tool as an
idempotency key, so an approved action runs once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from ..events import ProvenanceNoted, ToolFinished
from ..policy.flows import leaves

# An approval older than this is refused (the person may have answered a stale question); the model
# can ask again, which makes a new question with its own clock.
CONFIRMATION_TTL = 600.0  # seconds


@dataclass(frozen=True)
class PendingAction:
    id: str
    run_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    summary: str
    reason: str
    from_untrusted: list[str] = field(default_factory=list)
    requested_at: float = field(default_factory=time.time)  # wall clock, so any process can judge expiry

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expired(self, decided_at: float | None = None, ttl: float = CONFIRMATION_TTL) -> bool:
        return (decided_at if decided_at is not None else time.time()) - self.requested_at > ttl


# Answers True (approve) or False (reject); may be async. Without one, the run pauses instead.
Confirmer = Callable[[PendingAction], bool | Awaitable[bool]]


def action_id(run_id: str, call_id: str, tool: str, arguments: Any) -> str:
    canonical = json.dumps([run_id, call_id, tool, arguments], sort_keys=True, separators=(",", ":"), default=str)
    return "act_" + hashlib.sha256(canonical.encode()).hexdigest()[:20]


def untrusted_arguments(arguments: Any, events: list, history: list[dict[str, Any]] = ()) -> list[str]:
    """Argument paths whose values were copied from untrusted tool output seen in this run, or from a
    history that brought untrusted content in (`history`: the conversation before this run's question)."""
    texts = [json.dumps(e.error or e.result, ensure_ascii=False, default=str).lower()  # an error's text too
             for e in events if isinstance(e, ToolFinished) and e.untrusted]
    if any(isinstance(e, ProvenanceNoted) and any(s.get("untrusted") for s in e.sources) for e in events):
        texts += [json.dumps(m.get("content"), ensure_ascii=False, default=str).lower() for m in history]
    if not texts:
        return []
    found = []
    for path, value in leaves(arguments):
        if value is None or isinstance(value, bool):
            continue
        needle = str(value).lower()
        if len(needle) >= 4 and any(needle in text for text in texts):
            found.append(path)
    return found


def summarize(tool_name: str, arguments: dict[str, Any]) -> str:
    """A readable account of what will be sent, one argument per line."""
    lines = [f"{tool_name}"]
    for key, value in arguments.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {key}: {shown}")
    return "\n".join(lines)
