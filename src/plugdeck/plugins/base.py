"""A Plugin bundles tools with a manifest: who made it, what version, what effects it has."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from ..tools import Tool

PLUGIN_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass
class Plugin:
    name: str
    tools: list[Tool]
    version: str = "0.1.0"
    description: str = ""
    author: str = ""
    source: str = ""  # where it was found: "entry point mypkg.plugin:plugin", a spec path, ...
    needs: dict[str, Any] = field(default_factory=dict)  # network hosts, secrets (declared, for review)
    close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)  # release connections
    origin: str = "local"  # local (made in code) | builtin | added (plugins add) | third-party

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= PLUGIN_NAME_CHARS:
            raise ValueError(f"plugin name {self.name!r} must be lowercase letters, digits, '_' or '-'")
        self.tools = [t.in_plugin(self.name, self.origin) for t in self.tools]
        names = [t.name for t in self.tools]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"plugin {self.name!r} has more than one tool named {sorted(duplicates)}")

    def set_origin(self, origin: str) -> None:
        self.origin = origin
        self.tools = [t.in_plugin(self.name, origin) for t in self.tools]

    @property
    def effect(self) -> str:
        """The plugin's effect class: `write` if any of its tools changes something."""
        return "write" if any(t.effect == "write" for t in self.tools) else "read"

    def tool(self, name: str) -> Tool:
        for t in self.tools:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in self.tools)
        raise KeyError(f"plugin {self.name!r} has no tool {name!r} (it has: {known})")

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "author": self.author,
            "effect": self.effect,
            "source": self.source,
            "origin": self.origin,
            "needs": self.needs,
            "tools": [
                {"name": t.name, "description": t.description, "effect": t.effect,
                 "timeout": t.timeout, "parameters": t.parameters}
                for t in self.tools
            ],
        }


def plugin_from(obj: Any, *, name: str | None = None) -> Plugin:
    """Accept what an entry point may give: a Plugin, a factory returning one, or a list of tools."""
    if callable(obj) and not isinstance(obj, (Plugin, Tool)):
        obj = obj()
    if isinstance(obj, Plugin):
        return obj
    if isinstance(obj, Tool):
        obj = [obj]
    if isinstance(obj, Iterable) and name:
        tools = list(obj)
        if all(isinstance(t, Tool) for t in tools):
            return Plugin(name=name, tools=tools)
    raise TypeError(f"expected a Plugin, a function returning one, or a list of tools; got {type(obj).__name__}")
