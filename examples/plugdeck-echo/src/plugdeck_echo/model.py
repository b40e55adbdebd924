"""A model backend: `--model echo:GREETING` answers every question by greeting and repeating it."""

from __future__ import annotations

from typing import Any, AsyncIterator

from plugdeck.models.base import ModelResponse, TextChunk, last_user_turn


class EchoModel:
    def __init__(self, greeting: str):
        self.name = f"echo:{greeting}"
        self.greeting = greeting or "hello"

    async def stream(self, messages: list[dict[str, Any]], tools: list[Any]) -> AsyncIterator[TextChunk | ModelResponse]:
        question, _ = last_user_turn(messages)
        text = f"{self.greeting}! You asked: {question}"
        yield TextChunk(text)
        yield ModelResponse(text=text, finish_reason="stop")


def echo_model(name: str) -> EchoModel:
    """plugdeck calls this with what follows `echo:` in the model's name."""
    return EchoModel(name)
