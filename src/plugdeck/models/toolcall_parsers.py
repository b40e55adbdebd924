"""Read tool-call arguments that a model wrote as JSON text, repairing only what is unambiguous.

Repairs made: surrounding whitespace or a Markdown code fence, an empty string meaning `{}`,
trailing commas before `}` or `]`, Python's True/False/None outside strings, and closing
brackets missing at the very end when every string is already closed. Anything else (an
unterminated string, two objects, a bare value) is refused: guessing would mean calling a tool
with arguments nobody wrote.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import PlugdeckError

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


class ArgumentsError(PlugdeckError, ValueError):
    pass


def parse_arguments(raw: str | dict | None) -> tuple[dict[str, Any], bool]:
    """Return (arguments, repaired). Raises ArgumentsError with a reason a model can act on."""
    if isinstance(raw, dict):
        return raw, False
    text = (raw or "").strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1)
    if not text:
        return {}, bool(raw)
    try:
        value = json.loads(text)
        repaired = text != (raw or "").strip()
    except json.JSONDecodeError as first_error:
        fixed = _repair(text)
        try:
            value = json.loads(fixed) if fixed is not None else None
        except json.JSONDecodeError:
            fixed = None
        if fixed is None:
            raise ArgumentsError(
                f"the arguments are not valid JSON ({first_error.msg} at character {first_error.pos})"
                " and cannot be repaired without guessing"
            ) from None
        repaired = True
    if not isinstance(value, dict):
        raise ArgumentsError(f"the arguments must be a JSON object, got {type(value).__name__}")
    return value, repaired


def _repair(text: str) -> str | None:
    """Apply the unambiguous repairs; None when the text is broken in a way that needs a guess."""
    out: list[str] = []
    closers: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            end = _string_end(text, i)
            if end is None:
                return None  # unterminated string: where it was meant to end is a guess
            out.append(text[i : end + 1])
            i = end + 1
            continue
        if ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not closers or closers.pop() != ch:
                return None
            _drop_trailing_comma(out)
        elif ch.isalpha():
            word = re.match(r"[A-Za-z]+", text[i:]).group(0)
            out.append(_PY_LITERALS.get(word, word))
            i += len(word)
            continue
        out.append(ch)
        i += 1
    if closers:
        _drop_trailing_comma(out)
        if out and out[-1].rstrip().endswith(":"):
            return None  # a key without its value
        out.extend(reversed(closers))
    return "".join(out)


def _string_end(text: str, start: int) -> int | None:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def _drop_trailing_comma(out: list[str]) -> None:
    while out and out[-1].isspace():
        out.pop()
    if out and out[-1] == ",":
        out.pop()
