"""The `rules` model: the offline default, with no weights.

A deterministic router in the spirit of MRKL systems. Each skill recognises one kind of request
and names the tool capability it needs; the model calls that tool through the normal agent loop
and composes the answer only from the tool's result. When no skill applies, it says so and how
to connect an LLM. It never makes an answer up: when it has none, its turn ends with the finish
reason "refusal" (so `plugdeck ask` exits non-zero).
"""

from __future__ import annotations

import json
import re
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




# ---- arithmetic ---------------------------------------------------------------------------------

_LEADING = re.compile(
    r"^(?:please\s+|can you\s+|could you\s+|tell me\s+|"
    r"what\s+is\s+|what's\s+|whats\s+|how\s+much\s+is\s+|calculate\s+|compute\s+|evaluate\s+|"
    r"work\s+out\s+|the\s+value\s+of\s+|the\s+result\s+of\s+)+"
)
_WORDS = [
    (r"\bmultiplied\s+by\b|\btimes\b", "*"),
    (r"\bdivided\s+by\b", "/"),
    (r"\bplus\b|\bincreased\s+by\b", "+"),
    (r"\bminus\b|\bdecreased\s+by\b", "-"),
    (r"\b(?:raised\s+)?to\s+the\s+power\s+of\b|\braised\s+to\b", "^"),
    (r"\bsquared\b", "^2"),
    (r"\bcubed\b", "^3"),
    (r"\s*\bper\s*cent\b|\s*\bpercent\b", "%"),
    (r"\b(?:the\s+)?square\s+root\s+of\s+([\d.,]+)", r"sqrt(\1)"),
    (r"\b(?:the\s+)?factorial\s+of\s+(\d+)", r"\1!"),
    (r"(?<=\d)\s+factorial\b", "!"),
    (r"(?<=\d)\s*x\s*(?=\d)", "*"),
    (r",(?!\d{3}(?!\d))", " "),  # a comma that is punctuation, not a thousands separator
]
_OPERATION = re.compile(r"[-+*/^%!×÷]|\b(?:of|mod|more than|less than)\b|[a-z]\w*\s*\(")


def arithmetic_expression(question: str) -> str | None:
    """Turn 'What is 17.5% of 2,340, plus 12?' into '17.5% of 2,340 + 12'; None if it isn't arithmetic."""
    from ..plugins.calculator.arithmetic import CalcError, parse

    # A "!" that follows a number is a factorial ("10!"), not the end of the sentence.
    text = re.sub(r"(?<![\d)])!+$", "", question.strip().lower().rstrip(" ?.=")).rstrip(" ?.=")
    text = _LEADING.sub("", text)
    for pattern, replacement in _WORDS:
        text = re.sub(pattern, replacement, text)
    text = " ".join(text.split())
    if not re.search(r"\d", text) or not _OPERATION.search(text):
        return None
    try:
        parse(text)
    except CalcError:
        return None
    return text


def _arithmetic_answer(arguments: dict[str, Any], result: Any) -> str:
    if not isinstance(result, dict) or "result" not in result:
        return str(result)
    text = str(result["result"])
    if result.get("decimal"):
        text += f" (≈ {result['decimal']})"
    return text


def arithmetic_skill() -> Skill:
    def plan(question: str) -> dict[str, Any] | None:
        expression = arithmetic_expression(question)
        return {"expression": expression} if expression else None

    return Skill("arithmetic", "arithmetic and percentages", plan, _arithmetic_answer)


def default_skills() -> list[Skill]:
    from ..plugins.knowledge.rules_skill import knowledge_skill

    return [arithmetic_skill(), knowledge_skill()]  # knowledge last: it takes any question
