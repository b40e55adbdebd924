"""A token count for servers that send no usage, so token and cost budgets still apply.

No tokenizer is at hand for an arbitrary server's model, so the count is a rule of thumb: about four
bytes of UTF-8 per token (English prose and JSON run 3.5-4.5 characters per token in the common BPE
vocabularies; counting bytes rather than characters keeps scripts such as Chinese, at ~1 token per
character, from being undercounted fourfold). bench/token_estimate.py measures it against o200k_base.
Counts made this way are marked `estimated` wherever they are shown.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..tools import ToolSpec
from .base import ModelResponse

BYTES_PER_TOKEN = 4.0
PER_MESSAGE = 4  # the role and the separators a chat template wraps each message in
PER_REPLY = 3  # the assistant header the reply is primed with


def estimate_tokens(text: str) -> int:
    """Tokens in a piece of text, by the bytes rule."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN) if text else 0


def estimate_prompt(messages: list[dict[str, Any]], tools: list[ToolSpec]) -> int:
    """Tokens of a request: every message's text and tool calls, and the tools' specs."""
    total = PER_REPLY
    for message in messages:
        total += PER_MESSAGE + estimate_tokens(_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += estimate_tokens(str(function.get("name") or "")) + estimate_tokens(_text(function.get("arguments")))
    if tools:
        total += estimate_tokens(json.dumps([spec.openai() for spec in tools], ensure_ascii=False))
    return total


def estimate_usage(response: ModelResponse, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> None:
    """Fill in the token counts of a reply that came without usage, and mark them estimated."""
    response.prompt_tokens = estimate_prompt(messages, tools)
    completion = estimate_tokens(response.text) + estimate_tokens(response.reasoning)
    for call in response.tool_calls:
        completion += estimate_tokens(call.name) + estimate_tokens(call.raw_arguments or "")
    response.completion_tokens = completion
    response.usage_estimated = True


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text ones are tokens of text
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return json.dumps(content, ensure_ascii=False)
