"""A model that plays back prepared turns: for tests, docs, benchmarks and replay.

A turn is a string (a final answer), a dict `{"text": ..., "tool_calls": [{"name", "arguments"}],
"usage": {"prompt_tokens", "completion_tokens"}}`, a ModelResponse, or a function of
`(messages, tools)` returning one of those (for a model that reacts to what it reads).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable, Iterable

from ..tools import ToolSpec
from .base import ModelError, ModelResponse, TextChunk, ToolCall
from .toolcall_parsers import ArgumentsError, parse_arguments

Turn = str | dict[str, Any] | ModelResponse | Callable[[list[dict[str, Any]], list[ToolSpec]], Any]


class ScriptedModel:
    def __init__(self, turns: Iterable[Turn], *, name: str = "scripted", chunk_size: int = 0):
        self.name = name
        self.turns = list(turns)
        self.position = 0
        self.chunk_size = chunk_size  # >0: stream the text in pieces of this many characters
        self.calls: list[list[dict[str, Any]]] = []  # what the model was shown, call by call

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ModelResponse]:
        self.calls.append(list(messages))
        if self.position >= len(self.turns):
            raise ModelError(f"the scripted model has no turn left (it had {len(self.turns)})")
        turn = self.turns[self.position]
        self.position += 1
        if callable(turn):
            turn = turn(messages, tools)
        response = to_response(turn, call_number=self.position)
        if self.chunk_size and response.text:
            for i in range(0, len(response.text), self.chunk_size):
                yield TextChunk(response.text[i : i + self.chunk_size])
                await asyncio.sleep(0)  # like a real stream, let other work run between pieces
        elif response.text:
            yield TextChunk(response.text)
        yield response


def to_response(turn: Any, call_number: int = 1) -> ModelResponse:
    if isinstance(turn, ModelResponse):
        return turn
    if isinstance(turn, str):
        return ModelResponse(text=turn)
    if not isinstance(turn, dict):
        raise ModelError(f"a scripted turn must be text, a dict or a ModelResponse, not {type(turn).__name__}")
    calls = [_tool_call(c, f"call_{call_number}_{i}") for i, c in enumerate(turn.get("tool_calls", []))]
    usage = turn.get("usage", {})
    return ModelResponse(
        text=turn.get("text", ""),
        tool_calls=calls,
        finish_reason=turn.get("finish_reason", "tool_calls" if calls else "stop"),
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        cached_tokens=usage.get("cached_tokens", 0),
        reasoning_tokens=usage.get("reasoning_tokens", 0),
        usage_estimated=bool(usage.get("estimated", False)),
    )


def _tool_call(spec: dict[str, Any], default_id: str) -> ToolCall:
    raw = spec.get("arguments", {})
    raw_text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        arguments, repaired = parse_arguments(raw)
        error = None
    except ArgumentsError as exc:
        arguments, repaired, error = None, False, str(exc)
    return ToolCall(spec.get("id", default_id), spec["name"], arguments, raw_text, error, repaired)
