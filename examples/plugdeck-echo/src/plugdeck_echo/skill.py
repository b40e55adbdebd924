"""A skill for the offline `rules` model: "reverse the word X" calls a text-reversal tool."""

from __future__ import annotations

import re
from typing import Any

from plugdeck.models.rules import Skill

_ASKED = re.compile(r"^\s*(?:please\s+)?reverse\s+(?:the\s+(?:word|text)\s+)?[\"']?(.+?)[\"']?\s*[?.!]*\s*$", re.I)


def plan(question: str) -> dict[str, Any] | None:
    found = _ASKED.match(question)
    return {"text": found.group(1)} if found else None


def answer(arguments: dict[str, Any], result: Any) -> str:
    return f"{arguments.get('text', '')!r} reversed is {result!r}"


def reverse_skill() -> Skill:
    return Skill("text-reversal", "reversing text (reverse the word X)", plan, answer)
