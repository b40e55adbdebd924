"""The obedient attacker over HTTP: the loopback OpenAI-compatible server of tests/mock_openai.py,
answering each request with what a Brain decides from the messages that request actually carried
(so it reads the prompt exactly as plugdeck's OpenAI client sent it)."""

from __future__ import annotations

from typing import Any

from mock_openai import MockOpenAI, _normalize

from .attacker import Brain


class ObedientServer(MockOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.brain: Brain | None = None

    def _next_turn(self) -> tuple[dict[str, Any] | None, int]:
        with self._lock:
            self._served += 1
            number, body = self._served, self.requests[-1]
        if self.brain is None:
            return None, number
        return _normalize(self.brain(body["messages"], body.get("tools") or [])), number
