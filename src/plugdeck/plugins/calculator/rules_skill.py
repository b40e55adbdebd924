"""The offline `rules` model's arithmetic skill: a question in words ("What is 17.5% of 2,340, plus
12?") becomes an expression for the calculator's `calculate` tool, and its exact result is the answer.

Registered in the `plugdeck.rules_skills` entry-point group (pyproject.toml), like a third party's skill.
"""

from __future__ import annotations

import re
from typing import Any

from ...models.rules import Skill
from .arithmetic import CalcError, parse

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
