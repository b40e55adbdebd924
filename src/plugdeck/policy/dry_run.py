"""A dry run for a new policy: judge the tool calls of stored runs again under it and report what would change.

A run knows every tool it used: each call records the tool's traits (effect, origin, untrusted,
private, egress), so tools that are not loaded now (a knowledge base named with `--kb`, a plugin
removed since) are judged from what the run recorded. The installed tool is used when there is one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..events import PolicyDecided, ToolStarted, event_from_dict
from ..tools import UNDECLARED, Tool
from .engine import decide
from .load import Policy


@dataclass
class Change:
    run_id: str
    call_id: str
    tool: str
    arguments: Any
    before: str  # the decision recorded in the run (or "none recorded")
    after: str
    rule: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dry_run(policy: Policy, runs: list[dict[str, Any]], tools: dict[str, Tool]) -> tuple[list[Change], int]:
    """(changes, number of calls checked) for stored runs (as RunStore.get_run returns them)."""
    changes: list[Change] = []
    checked = 0
    for run in runs:
        events = [event_from_dict(e) for e in run["events"]]
        recorded = {e.call_id: e.decision for e in events if isinstance(e, PolicyDecided) and e.call_id}
        for i, event in enumerate(events):
            if not isinstance(event, ToolStarted):
                continue
            checked += 1
            before = recorded.get(event.call_id, "none recorded")
            tool = tools.get(event.tool) or recorded_tool(event.tool, event.traits)
            if tool is None:
                changes.append(Change(run["id"], event.call_id, event.tool, event.arguments, before, "unknown tool",
                                      "-", "the tool is not installed any more"))
                continue
            arguments = event.arguments if isinstance(event.arguments, dict) else {}
            after = decide(policy, tool, arguments, events[:i])
            if after.action != before:
                changes.append(Change(run["id"], event.call_id, event.tool, event.arguments, before, after.action,
                                      after.rule, after.reason))
    return changes, checked


def recorded_tool(name: str, traits: dict[str, Any] | None) -> Tool | None:
    """A stand-in for a tool that is not loaded, from the traits a run recorded (None: none recorded)."""
    if not traits:
        return None
    plugin, _, bare = name.partition(".") if "." in name else ("", "", name)
    return Tool(name=bare, description="", parameters={}, func=lambda **_: None, plugin=plugin or None,
                effect=traits.get("effect", "read"), origin=traits.get("origin", "local"),
                untrusted=bool(traits.get("untrusted")), private=bool(traits.get("private")),
                egress=traits.get("egress", UNDECLARED))
