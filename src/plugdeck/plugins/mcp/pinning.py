"""Pinning MCP tool definitions against rug pulls.

When a person approves an MCP server's tools, plugdeck records a SHA-256 over the canonical JSON of
each tool's full definition (name, title, description, input and output schema, annotations) and
keeps the definition itself. A description that later gains hidden instructions, a parameter that
changes meaning, or annotations that flip from read-only: each changes the hash, and the tool stays
disabled until the person looks at the diff and approves it again.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ...schemas import canonical_json, nfc
from ...tools import ToolError

# What a person approves: every field that reaches the model or decides how the tool is treated.
DEFINITION_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def definition(tool: dict[str, Any]) -> dict[str, Any]:
    """The pinned part of a tool as MCP sends it (its wire form)."""
    return {key: tool[key] for key in DEFINITION_FIELDS if tool.get(key) is not None}


def definition_hash(tool_definition: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(definition(tool_definition)).encode()).hexdigest()


def server_identity(options: dict[str, Any]) -> str:
    """A hash of how the server is reached (command and arguments, or URL) and of what it is given
    (the declared variables and headers): approvals are bound to all of it, so a secret declared in
    the config afterwards does not reach the server unapproved."""
    reached = {"command": options.get("command"), "url": options.get("url")}
    given = {"env": options.get("env") or {}, "headers_env": options.get("headers_env") or {}}
    if any(given.values()):  # without any, the hash stays what earlier versions recorded
        reached.update(given)
    return "sha256:" + hashlib.sha256(canonical_json(reached).encode()).hexdigest()


def approve(options: dict[str, Any], live: dict[str, dict[str, Any]], tools: list[str] | None = None) -> dict[str, Any]:
    """New options recording the person's approval of `tools` (default: the whole live list)."""
    approved = dict(options.get("approved") or {})
    definitions = dict(options.get("tools") or {})
    if tools is None:  # the whole list as it is now: what the server dropped goes too
        approved, definitions = {}, {}
        tools = list(live)
    for name in tools:
        definitions[name] = definition(live[name])
        approved[name] = definition_hash(live[name])
    return {**options, "approved": approved, "tools": definitions, "server": server_identity(options)}


@dataclass
class Review:
    """How a server's live tool list compares with what the person approved."""

    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.changed or self.new or self.removed)


def review(approved: dict[str, str], live: dict[str, dict[str, Any]]) -> Review:
    """Compare approved hashes (tool name -> hash) with live definitions (tool name -> definition)."""
    result = Review()
    for name, tool_definition in live.items():
        if name not in approved:
            result.new.append(name)
        elif approved[name] == definition_hash(tool_definition):
            result.unchanged.append(name)
        else:
            result.changed.append(name)
    result.removed = [name for name in approved if name not in live]
    return result


def _pretty(tool_definition: dict[str, Any] | None) -> list[str]:
    if tool_definition is None:
        return []
    text = json.dumps(nfc(definition(tool_definition)), sort_keys=True, indent=2, ensure_ascii=False)
    return text.splitlines(keepends=True)


def diff(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """A unified diff of a tool's approved definition against the one the server sends now."""
    lines = difflib.unified_diff(_pretty(old), _pretty(new), f"{name} (approved)", f"{name} (server now)", n=3)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class Pins:
    """The approvals of one added server, checked against what its live session lists."""

    def __init__(self, server: str, options: dict[str, Any]):
        self.server = server
        self.approved: dict[str, str] = dict(options.get("approved") or {})
        self.definitions: dict[str, dict[str, Any]] = dict(options.get("tools") or {})
        self.identity_matches = options.get("server") == server_identity(options)
        self.live: dict[str, dict[str, Any]] | None = None
        self.review: Review | None = None

    def observe(self, live: dict[str, dict[str, Any]]) -> None:
        """Called with the server's tool list at every connect and re-list."""
        self.live = live
        self.review = review(self.approved, live)

    def check_server(self) -> None:
        if not self.identity_matches:
            raise ToolError(
                f"the command, URL or declared environment of MCP server {self.server!r} changed since its "
                "tools were approved, so "
                f"plugdeck will not start it. Review it and approve it again: plugdeck plugins approve {self.server}",
                "server_changed")

    def guard(self, tool: str) -> None:
        """Refuse a tool whose live definition is not the approved one."""
        self.check_server()
        if self.review is None:
            return
        if tool in self.review.changed:
            raise ToolError(
                f"MCP server {self.server!r} changed the definition of tool {tool!r} since it was approved, so "
                f"plugdeck disabled it. A person must review the change (plugdeck plugins diff {self.server}) and "
                f"approve it (plugdeck plugins approve {self.server} {tool}).", "tool_changed")
        if tool in self.review.removed:
            raise ToolError(f"MCP server {self.server!r} no longer offers the tool {tool!r}", "tool_removed")
