"""plugdeck: let any LLM answer by calling plugins.

The public face: Agent, Run, tool/Tool, Plugin, RunContext (what a tool may know of its run), Policy,
Limits and Usage, PendingAction (an action that waits for a person), the event classes (also in
`plugdeck.events`) and the errors (also in `plugdeck.errors`). Names load on first use so that
`import plugdeck` stays fast (no pydantic, httpx or rich until something needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EVENTS = ("Event", "RunStarted", "PlannerNote", "TextDelta", "ModelCalled", "ToolStarted", "ToolFinished",
           "ProvenanceNoted", "PolicyDecided", "ConfirmationRequested", "ConfirmationAnswered", "AnswerChecked",
           "AnswerGiven", "RunFinished")

# name -> the module that defines it
_EXPORTS = {
    "Agent": "plugdeck.agent.agent",
    "Run": "plugdeck.agent.run",
    "PendingAction": "plugdeck.agent.confirm",
    "tool": "plugdeck.tools",
    "tool_from_schema": "plugdeck.tools",
    "Tool": "plugdeck.tools",
    "RunContext": "plugdeck.tools",
    "Plugin": "plugdeck.plugins.base",
    "Policy": "plugdeck.policy.load",
    "Limits": "plugdeck.usage",
    "Usage": "plugdeck.usage",
    "ScriptedModel": "plugdeck.models.scripted",
    "OpenAIModel": "plugdeck.models.openai",
    "RulesModel": "plugdeck.models.rules",
    "RunStore": "plugdeck.ops.runstore",
    # errors
    "PlugdeckError": "plugdeck.errors",
    "UserError": "plugdeck.errors",
    "RunStopped": "plugdeck.errors",
    "ToolError": "plugdeck.tools",
    "PolicyError": "plugdeck.policy.load",
    "LimitsError": "plugdeck.usage",
    "ModelError": "plugdeck.models.base",
    "OutputInvalid": "plugdeck.agent.output",
    **{name: "plugdeck.events" for name in _EVENTS},
}

__all__ = [
    "__version__",
    "Agent", "Run", "PendingAction", "tool", "tool_from_schema", "Tool", "RunContext", "Plugin", "Policy",
    "Limits", "Usage", "ScriptedModel", "OpenAIModel", "RulesModel", "RunStore",
    "PlugdeckError", "UserError", "RunStopped", "ToolError", "PolicyError", "LimitsError", "ModelError",
    "OutputInvalid",
    "Event", "RunStarted", "PlannerNote", "TextDelta", "ModelCalled", "ToolStarted", "ToolFinished",
    "ProvenanceNoted", "PolicyDecided", "ConfirmationRequested", "ConfirmationAnswered", "AnswerChecked",
    "AnswerGiven", "RunFinished",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports on first use
    from .agent.agent import Agent as Agent
    from .agent.confirm import PendingAction as PendingAction
    from .agent.output import OutputInvalid as OutputInvalid
    from .agent.run import Run as Run
    from .errors import PlugdeckError as PlugdeckError
    from .errors import RunStopped as RunStopped
    from .errors import UserError as UserError
    from .events import AnswerChecked as AnswerChecked
    from .events import AnswerGiven as AnswerGiven
    from .events import ConfirmationAnswered as ConfirmationAnswered
    from .events import ConfirmationRequested as ConfirmationRequested
    from .events import Event as Event
    from .events import ModelCalled as ModelCalled
    from .events import PlannerNote as PlannerNote
    from .events import PolicyDecided as PolicyDecided
    from .events import ProvenanceNoted as ProvenanceNoted
    from .events import RunFinished as RunFinished
    from .events import RunStarted as RunStarted
    from .events import TextDelta as TextDelta
    from .events import ToolFinished as ToolFinished
    from .events import ToolStarted as ToolStarted
    from .models.base import ModelError as ModelError
    from .models.openai import OpenAIModel as OpenAIModel
    from .models.rules import RulesModel as RulesModel
    from .models.scripted import ScriptedModel as ScriptedModel
    from .ops.runstore import RunStore as RunStore
    from .plugins.base import Plugin as Plugin
    from .policy.load import Policy as Policy
    from .policy.load import PolicyError as PolicyError
    from .tools import RunContext as RunContext
    from .tools import Tool as Tool
    from .tools import ToolError as ToolError
    from .tools import tool as tool
    from .tools import tool_from_schema as tool_from_schema
    from .usage import Limits as Limits
    from .usage import LimitsError as LimitsError
    from .usage import Usage as Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugdeck' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
