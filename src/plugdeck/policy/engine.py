"""Decisions: what the policy says about one tool call, and whether a limit has been reached.

Checked in code, outside the model, before every tool call. The order: deny lists, access
(allow lists and where the plugin came from), argument rules, confirmation lists, the data-flow
rule (content the model read may not leave through another tool's egress unasked: see
plugdeck.policy.flows), then effects: a `write` tool needs a person's OK by default, and always once
untrusted content (documents, web pages, API or database results, or a client-sent history) is in
the context, because from then on the model's intentions may be an attacker's. The context is the
whole conversation, history included (see plugdeck.policy.provenance).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..events import Event
from ..tools import Tool
from ..usage import Limits, Usage
from .flows import check_flow
from .load import ArgumentRule, Policy
from .provenance import Context, context_of

# Where a plugin comes from decides whether it may run before the policy names it: plugdeck's own,
# those a person added with `plugins add`, and tools made in the program itself may; third-party
# packages that merely got installed may not.
TRUSTED_ORIGINS = ("local", "builtin", "added")


@dataclass(frozen=True)
class Decision:
    action: str  # allow | deny | confirm
    rule: str
    reason: str = ""
    details: dict[str, Any] | None = None


def decide(policy: Policy, tool: Tool, arguments: dict[str, Any], events: list[Event],
           context: Context | None = None) -> Decision:
    """The decision on one call, given the run's events so far (its context is derived from them)."""
    name = tool.qualified_name
    for i, pattern in enumerate(policy.deny):
        if fnmatchcase(name, pattern):
            return Decision("deny", f"deny {pattern!r} ({policy.where(f'deny[{i}]')})", f"{name} is on the deny list")
    allowed_by = next((i for i, p in enumerate(policy.allow) if fnmatchcase(name, p)), None)
    if allowed_by is None and tool.origin not in TRUSTED_ORIGINS:
        return Decision("deny", "third-party plugins are denied until allowed",
                        f"plugin {tool.plugin!r} comes from a third-party package; allow it with "
                        f"allow = [\"{tool.plugin}.*\"] under [policy] in plugdeck.toml")
    for rule in policy.arguments:
        if fnmatchcase(name, rule.tool):
            broken = violation(rule, arguments)
            if broken:
                return Decision(rule.action, rule.name, rule.reason or broken)
    for i, pattern in enumerate(policy.confirm):
        if fnmatchcase(name, pattern):
            return Decision("confirm", f"confirm {pattern!r} ({policy.where(f'confirm[{i}]')})",
                            f"{name} always needs a person's OK")
    context = context if context is not None else context_of(events)
    flow = check_flow(policy.flows, tool, arguments, context, policy.where)
    if flow is not None and flow.action != "allow":
        return Decision(flow.action, flow.rule, flow.reason, flow.details())
    if tool.effect == "write":
        if policy.confirm_writes:
            return Decision("confirm", "write tools need confirmation", f"{name} changes something outside plugdeck")
        if context.untrusted:
            return Decision("confirm", "untrusted content entered the conversation",
                            f"the conversation contains outside data that may carry instructions (from "
                            f"{context.describe(context.untrusted)}), so actions need a person's OK",
                            {"sources": [s.to_dict() for s in context.untrusted]})
    if flow is not None:  # relaxed by the policy: say so
        return Decision("allow", flow.rule, flow.reason, flow.details())
    return Decision("allow", f"allow {policy.allow[allowed_by]!r}" if allowed_by is not None else "default allow")


def violation(rule: ArgumentRule, arguments: dict[str, Any]) -> str | None:
    """Why the arguments break the rule, or None. A missing argument breaks no rule."""
    for path, value in values_at(arguments, rule.path):
        if rule.values is not None and value not in rule.values:
            return f"{path} = {value!r} is not one of {rule.values}"
        if rule.min is not None or rule.max is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return f"{path} = {value!r} is not a number"
            if rule.min is not None and value < rule.min:
                return f"{path} = {value} is below {rule.min}"
            if rule.max is not None and value > rule.max:
                return f"{path} = {value} is above {rule.max}"
        if rule.pattern is not None and not (isinstance(value, str) and rule.pattern.fullmatch(value)):
            return f"{path} = {value!r} does not match {rule.pattern.pattern!r}"
        if rule.hosts is not None:
            host = urlsplit(str(value)).hostname if "://" in str(value) else None
            if host is None or host.lower() not in {h.lower() for h in rule.hosts}:
                return f"{path} = {value!r} is not a URL on an allowed host ({', '.join(rule.hosts)})"
    return None


def values_at(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Yield (path, value) for `a.b`, `items[].quantity` (every item) and `items[0]`."""
    items = [("", data)]
    for part in path.split("."):
        key, _, index = part.partition("[")
        index = index.rstrip("]")
        found = []
        for where, value in items:
            if key:
                if not isinstance(value, dict) or key not in value:
                    continue
                where, value = f"{where}.{key}" if where else key, value[key]
            if index == "" and "[" in part:
                if isinstance(value, list):
                    found += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
            elif index:
                if isinstance(value, list) and index.isdigit() and int(index) < len(value):
                    found.append((f"{where}[{index}]", value[int(index)]))
            else:
                found.append((where, value))
        items = found
    yield from items


# What each limit counts, and what it is checked before: a model call or a tool call.
_BEFORE_MODEL = (("max_steps", "model calls"), ("max_tokens", "tokens"), ("max_cost", "cost"))
_BEFORE_TOOL = (("max_tool_calls", "tool calls"),)


def limit_reached(limits: Limits, usage: Usage, *, before: str) -> tuple[str, str] | None:
    """(limit, message) when a run that used `usage` may not take its next step, else None.

    `before` is 'model' (steps, tokens, cost) or 'tool' (tool calls). max_seconds is a deadline,
    not a count: the run keeps it (see Limits)."""
    if before not in ("model", "tool"):
        raise ValueError(f"before must be 'model' or 'tool', not {before!r}")
    used_of = {"max_steps": usage.model_calls, "max_tokens": usage.tokens, "max_cost": usage.cost,
               "max_tool_calls": usage.calls_admitted}
    for key, what in _BEFORE_MODEL if before == "model" else _BEFORE_TOOL:
        limit = getattr(limits, key)
        used = used_of[key]
        if limit is not None and used >= limit:
            shown = f"{used:.4f}" if key == "max_cost" else str(used)
            return key, f"the {key} budget ({limit:g}) was reached: {shown} {what} used"
    return None
