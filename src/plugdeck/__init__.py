"""plugdeck: let any LLM answer by calling plugins.

The public face is small: Agent, tool, Tool, Plugin, Run. Names load on first use so that
`import plugdeck` stays fast (no pydantic, httpx or rich until something needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "plugdeck.agent.agent",
    "Run": "plugdeck.agent.run",
    "tool": "plugdeck.tools",
    "tool_from_schema": "plugdeck.tools",
    "Tool": "plugdeck.tools",
    "ToolError": "plugdeck.tools",
    "Plugin": "plugdeck.plugins.base",
    "ScriptedModel": "plugdeck.models.scripted",
    "OpenAIModel": "plugdeck.models.openai",
    "RulesModel": "plugdeck.models.rules",
    "RunStore": "plugdeck.ops.runstore",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .agent.agent import Agent
    from .agent.run import Run
    from .models.openai import OpenAIModel
    from .models.rules import RulesModel
    from .models.scripted import ScriptedModel
    from .ops.runstore import RunStore
    from .plugins.base import Plugin
    from .tools import Tool, ToolError, tool, tool_from_schema


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugdeck' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
