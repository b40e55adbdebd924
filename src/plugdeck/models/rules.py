"""The `rules` model: the offline default, with no weights.

A deterministic router in the spirit of MRKL systems. Each skill recognises one kind of request
and names the tool capability it needs (skills come from packages, through the `plugdeck.rules_skills`
entry-point group: the calculator and knowledge plugins register theirs there, so this module imports
no plugin); the model calls that tool through the normal agent loop
and composes the answer only from the tool's result. When no skill applies, it says so and how
to connect an LLM. It never makes an answer up: when it has none, its turn ends with the finish
reason "refusal" (so `plugdeck ask` exits non-zero).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ..tools import ToolSpec
from .base import ModelResponse, TextChunk, ToolCall, decoded, last_user_turn

REFUSAL = "refusal"  # the finish reason of a turn that gives no answer
CONNECT_HINT = (
    'To answer anything else, connect an LLM: plugdeck ask --base-url http://127.0.0.1:8000/v1 '
    '--model NAME "..." (any OpenAI-compatible server), or add a model profile to plugdeck.toml.'
)


@dataclass(frozen=True)
class Skill:
    capability: str  # the tool capability it needs, e.g. "arithmetic"
    describe: str  # what it handles, for the "I can't" message
    plan: Callable[[str], dict[str, Any] | None]  # tool arguments for a question, or None
    answer: Callable[[dict[str, Any], Any], str]  # the answer from the call's arguments and result
    catch_all: bool = False  # plans for any question: used only when its tool is there


class RulesModel:
    name = "rules"

    def __init__(self, skills: list[Skill] | None = None):
        self.skills = skills if skills is not None else default_skills()

    async def stream(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> AsyncIterator[TextChunk | ModelResponse]:
        question, since = last_user_turn(messages)
        results = [m for m in since if m.get("role") == "tool"]
        if results:
            text, answered = self._compose(since, results)
            response = ModelResponse(text=text, finish_reason="stop" if answered else REFUSAL)
        else:
            response = self._route(question, tools)
        if response.text:
            yield TextChunk(response.text)
        yield response

    def _route(self, question: str, tools: list[ToolSpec]) -> ModelResponse:
        for skill in self.skills:
            arguments = skill.plan(question)
            if arguments is None:
                continue
            spec = next((s for s in tools if skill.capability in s.capabilities), None)
            if spec is None and skill.catch_all:
                continue
            if spec is None:
                return ModelResponse(text=f"This looks like {skill.describe}, but no plugin with that capability "
                                          f"({skill.capability}) is enabled, so I can't answer it offline. {CONNECT_HINT}",
                                     finish_reason=REFUSAL)
            # The call id names the skill, so the result can be composed by the skill that asked.
            call_id = f"{skill.capability}-1"
            return ModelResponse(tool_calls=[ToolCall(call_id, spec.name, arguments, json.dumps(arguments))],
                                 finish_reason="tool_calls")
        handled = ", ".join(s.describe for s in self.skills) or "nothing"
        return ModelResponse(text=f"I can't answer that offline: the built-in rules model only handles {handled}. "
                                  f"{CONNECT_HINT}", finish_reason=REFUSAL)

    def _compose(self, since: list[dict[str, Any]], results: list[dict[str, Any]]) -> tuple[str, bool]:
        """The answer from the tools' results, and whether any result gave one (not only errors)."""
        calls = {c["id"]: c for m in since for c in m.get("tool_calls") or []}
        parts, answered = [], False
        for message in results:
            call = calls.get(message.get("tool_call_id"), {})
            arguments = decoded(call.get("function", {}).get("arguments", "{}"))
            result = decoded(message.get("content", ""))
            if isinstance(result, dict) and "error" in result:
                error = result["error"] or {}
                parts.append(f"I could not get an answer: {error.get('message', error)}")
                continue
            capability = str(message.get("tool_call_id", "")).rsplit("-", 1)[0]
            skill = next((s for s in self.skills if s.capability == capability), None)
            parts.append(skill.answer(arguments, result) if skill else str(result))
            answered = True
        return "\n".join(parts), answered


def default_skills() -> list[Skill]:
    """The skills that installed packages register in the `plugdeck.rules_skills` entry-point group
    (plugdeck's own: arithmetic, knowledge). A skill that takes any question (catch_all) goes last,
    so the others are asked first."""
    from .. import extensions

    skills = []
    for skill in extensions.rules_skills():
        if isinstance(skill, Skill):
            skills.append(skill)
        else:
            logging.getLogger(__name__).warning("a rules skill was skipped: %r is not a plugdeck.models.rules.Skill",
                                                skill)
    return sorted(skills, key=lambda s: s.catch_all)
