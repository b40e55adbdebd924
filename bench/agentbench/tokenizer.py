"""The one tokenizer the mock server counts with (no tiktoken: it downloads its tables).

A token is a run of ASCII letters, a group of up to 3 digits, or a run of up to 3 other
non-space characters (punctuation, symbols, non-ASCII), each with the whitespace before it.
That is close to what BPE tokenizers do for English words, numbers and JSON punctuation
(cl100k also splits digits in groups of 3 and merges `{"`, `":`); it undercounts long rare
words. The pieces concatenate back to the text, so the server also streams by these tokens.
"""

from __future__ import annotations

import json
import re
from typing import Any

PIECE = re.compile(r"\s*(?:[A-Za-z]+|[0-9]{1,3}|[^A-Za-z0-9\s]{1,3})|\s+")
PER_MESSAGE = 3  # role and separators, as OpenAI's chat format adds per message
REPLY_PRIMING = 3
# A model writes a native tool call as text too: open-weights chat templates (Hermes, Qwen 2.5,
# Llama 3.1) have it generate `{"name": ..., "arguments": ...}`. "envelope" counts (and times) that
# whole object; "bare" counts only the name and the arguments, which makes tool calls cheaper
# than any real model can write them.
TOOL_CALL_STYLES = ("envelope", "bare")


def pieces(text: str) -> list[str]:
    return PIECE.findall(text)


def count(text: str) -> int:
    return len(PIECE.findall(text))


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def tool_call_parts(name: str, arguments: str, style: str = "envelope") -> tuple[int, int]:
    """Tokens a model writes for one tool call: (up to and including its name, after its arguments)."""
    if style == "bare":
        return count(name), 0
    return count(f'{{"name": "{name}", "arguments": '), count("}")


def tool_call_tokens(name: str, arguments: str, style: str = "envelope") -> int:
    head, tail = tool_call_parts(name, arguments, style)
    return head + count(arguments) + tail


def prompt_tokens(body: dict[str, Any], style: str = "envelope") -> int:
    """Tokens of every message (role, text, tool calls) plus the tool schemas, as the model reads them."""
    total = REPLY_PRIMING
    for message in body.get("messages") or []:
        total += PER_MESSAGE + count(str(message.get("role", ""))) + count(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += tool_call_tokens(function.get("name", ""), function.get("arguments") or "", style)
    if body.get("tools"):
        total += count(json.dumps(body["tools"]))
    return total
