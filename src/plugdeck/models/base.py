"""The one interface every model backend speaks.

`Model.stream(messages, tools)` yields `TextChunk`s as text arrives and ends with exactly one
`ModelResponse` (the whole turn: text, complete tool calls, usage, finish reason). Tool calls are
only ever handed over complete, so a half-streamed call can never be executed.
Messages use the OpenAI chat format (role, content, tool_calls, tool_call_id): every backend and
every OpenAI-compatible server understands it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, runtime_checkable

from ..errors import ServiceError
from ..tools import ToolSpec


class ModelError(ServiceError):
    """The model could not produce a turn (unreachable, refused, broken stream). Ends the run."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status the server refused with, if it answered at all


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str  # as the model wrote it (a wire name)
    arguments: dict[str, Any] | None  # None when the raw text could not be read
    raw_arguments: str = ""
    error: str | None = None  # why the arguments could not be read
    repaired: bool = False  # the raw text needed an unambiguous repair

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.error:
            data["raw_arguments"], data["error"] = self.raw_arguments, self.error
        return data

    def to_message(self) -> dict[str, Any]:
        """The call as it goes back into the conversation (OpenAI format)."""
        import json

        raw = json.dumps(self.arguments) if self.arguments is not None else self.raw_arguments
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": raw}}


@dataclass(slots=True)
class TextChunk:
    text: str


@dataclass(slots=True)
class ReasoningChunk:
    """A piece of a reasoning model's thinking (`reasoning_content`, or inline <think>): shown apart,
    never part of the answer."""

    text: str


@dataclass(slots=True)
class ModelResponse:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = "stop"
    prompt_tokens: int = 0  # cached ones included
    completion_tokens: int = 0  # reasoning ones included
    cached_tokens: int = 0  # prompt tokens the server had cached (usage.prompt_tokens_details.cached_tokens)
    reasoning_tokens: int = 0  # completion tokens spent thinking (usage.completion_tokens_details.reasoning_tokens)
    usage_estimated: bool = False  # the server sent no usage: the counts are plugdeck's estimate
    # Set by a fallback chain: the model that answered, its prices, and why the ones before it did not.
    served_by: str | None = None
    prices: Any = None  # plugdeck.models.pricing: Prices, HostedPrices or (input, output)
    fallbacks: list[str] = field(default_factory=list)
    # How the calls were read: "native" (the server's tool_calls) or the text format they were written in.
    tool_format: str | None = None
    tool_parse_errors: list[str] = field(default_factory=list)  # calls read from text that were refused
    reasoning: str = ""  # the model's thinking, never part of the answer
    send_reasoning: bool = False  # the profile asks for the thinking to go back to the model

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.send_reasoning and self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@runtime_checkable
class Model(Protocol):
    name: str

    def stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ModelResponse]: ...


def last_user_turn(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The latest user message and everything that came after it (tool calls, tool results)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            content = messages[i].get("content") or ""
            if isinstance(content, list):  # content parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content, messages[i + 1 :]
    return "", list(messages)


def decoded(content: Any) -> Any:
    """A message's JSON (tool-call arguments, a tool result) as data; anything else as it is."""
    if not isinstance(content, str):
        return content
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content
