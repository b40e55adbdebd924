"""A model's streamed reply, sorted as it arrives: reasoning, answer text, and tool calls written as text.

`ReplyReader.feed(text)` returns what may be shown now: `(reasoning, answer)`. Text that could still
turn out to be a tool call is held back (a suffix that could begin a format's marker, or a reply that
begins like a bare JSON or pythonic call) and handed on as answer text once it cannot be one, so a
call is never streamed to the person as if it were the answer. `finish(response)` then reads the
calls from the whole text (`toolcall_formats.parse_tool_calls`), sets them on the response with the
format it found, and returns the held-back text that turned out to be answer text.

`recover_calls(stream, tools, tool_format)` wraps any backend's stream with it; backends that
generate text themselves (local runtimes) use it the same way.
"""

from __future__ import annotations

import re
from typing import Any, AsyncIterator, Collection, Mapping

from ..tools import ToolSpec
from .base import ModelResponse, ReasoningChunk, TextChunk
from .toolcall_formats import CALL_KEYS, MARKERS, TEXT_FORMATS, UNTAGGED, harmony_channels, parse_tool_calls

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TRUNCATED = "the model ran out of output tokens while writing this call, so its arguments are incomplete"
_FIRST_KEY = re.compile(r'^(?:```(?:json)?\s*)?\[?\s*\{\s*"(\w+)"')
_PY_HEAD = re.compile(r"^\[\s*[A-Za-z_][\w.]*\s*(\(|$)")


class ReplyReader:
    def __init__(self, offered: Collection[str] | Mapping[str, dict[str, Any]], tool_format: str = "auto"):
        """`offered`: the tools' wire names, or them mapped to their parameter schemas (see parse_tool_calls)."""
        self.offered = offered
        self.tool_format = tool_format
        sniff = bool(offered) and tool_format != "native"
        formats = TEXT_FORMATS if tool_format in ("auto", "prompted") else (tool_format,)
        self.markers = tuple(m for f in formats for m in MARKERS.get(f, ())) if sniff else ()
        self.bare = sniff and any(f in UNTAGGED for f in formats)
        self._starts = {m[0] for m in self.markers}  # the characters a marker can begin with
        self.text = ""  # the whole answer text so far (reasoning taken out)
        self.reasoning = ""
        self.released = 0  # how much of self.text has been handed on
        self.state = "start"  # start | text | call (held to the end)
        self._think = "maybe"  # maybe (the reply may open with <think>) | in | done
        self._pending = ""  # text not yet sorted into reasoning or answer
        self._after_think = False

    # ---- streaming --------------------------------------------------------------------------------

    def feed(self, piece: str) -> tuple[str, str]:
        """Take a piece of streamed text; return (reasoning, answer text) to show now."""
        reasoning = self._split_think(piece)
        return reasoning, self._release()

    def add_reasoning(self, piece: str) -> None:
        self.reasoning += piece

    def _split_think(self, piece: str) -> str:
        """Inline <think>...</think> at the reply's start is reasoning, not answer."""
        self._pending += piece
        if self._think == "maybe":
            start = self._pending.lstrip()
            if start.startswith(THINK_OPEN):
                self._think, self._pending = "in", start[len(THINK_OPEN):]
            elif THINK_OPEN.startswith(start):
                return ""  # could still be "<think>": wait for more
            else:
                self._think = "done"
        if self._think == "in":
            end = self._pending.find(THINK_CLOSE)
            if end < 0:
                keep = _partial_suffix(self._pending, (THINK_CLOSE,))
                thought, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep:]
                self.reasoning += thought
                return thought
            thought = self._pending[:end]
            self.reasoning += thought
            self._think, self._pending, self._after_think = "done", self._pending[end + len(THINK_CLOSE):], True
            self._take_text()
            return thought
        self._take_text()
        return ""

    def _take_text(self) -> None:
        if self._after_think:  # the blank lines between the thinking and the answer are neither
            self._pending = self._pending.lstrip()
            self._after_think = not self._pending
        self.text += self._pending
        self._pending = ""

    def _release(self) -> str:
        if self.state == "call":
            return ""
        if self.state == "start":
            decided = self._decide_start()
            if decided is None:
                return ""
        held = self.text[self.released:]
        if self.state == "call":
            return ""
        if not any(c in held for c in self._starts):  # the common case: no marker can begin here
            return self._hand_on(len(held))
        for marker in self.markers:
            at = held.find(marker)
            if at >= 0:
                self.state = "call"
                return self._hand_on(at)
        return self._hand_on(len(held) - _partial_suffix(held, self.markers))

    def _decide_start(self) -> bool | None:
        """Does the reply begin like a call without a marker? None: cannot tell yet."""
        start = self.text.lstrip()
        if not start:
            return None
        if self.bare and start[0] in "{[`":
            if start.startswith("`") and not (start.startswith("```") or "```".startswith(start)):
                self.state = "text"
                return True
            key = _FIRST_KEY.match(start)
            head = _PY_HEAD.match(start)
            if key:
                self.state = "call" if key.group(1) in CALL_KEYS else "text"
            elif head and head.group(1) == "(":
                self.state = "call"
            elif len(start) < 200 and (re.fullmatch(r"(`{1,3}[a-z]*\s*)?\[?\s*(\{\s*(\"\w*)?)?", start) or head):
                return None  # too little to tell
            else:
                self.state = "text"
            return True
        if any(m.startswith(start) or start.startswith(m) for m in self.markers):
            self.state = "text"  # the marker check below holds it
            return True
        self.state = "text"
        return True

    def _hand_on(self, upto: int) -> str:
        out = self.text[self.released : self.released + upto]
        self.released += len(out)
        return out

    # ---- the end --------------------------------------------------------------------------------

    def finish(self, response: ModelResponse) -> tuple[str, str]:
        """Sort the whole reply onto the response; return (reasoning, answer text) still to show."""
        reasoning = ""
        if self._pending:  # a reply that was all "<think" or an unclosed prefix
            if self._think == "in":
                self.reasoning += self._pending
                reasoning = self._pending
            else:
                self.text += self._pending
            self._pending = ""
        shown_before_split = self._split_unopened_think()
        response.reasoning = self.reasoning
        response.text = self.text
        if response.tool_calls:
            response.tool_format = "native"
        elif self.markers or self.bare:
            parsed = parse_tool_calls(self.text, self.offered, self.tool_format)
            if parsed is not None:
                if response.finish_reason == "length":  # closing a cut-off call would invent its arguments
                    for call in parsed.calls:
                        call.arguments, call.error = None, TRUNCATED
                response.tool_calls = parsed.calls
                response.tool_format = parsed.format
                response.text = parsed.text
                if parsed.reasoning:
                    response.reasoning = f"{response.reasoning}\n{parsed.reasoning}".strip()
                response.tool_parse_errors = [f"{c.name or '?'}: {c.error}" for c in parsed.failed]
                if response.finish_reason == "stop":
                    response.finish_reason = "tool_calls"
            elif "<|channel|>" in self.markers and (channels := harmony_channels(self.text)) is not None:
                response.text = channels.text  # a gpt-oss answer: its analysis channel is reasoning, not answer
                response.reasoning = f"{response.reasoning}\n{channels.reasoning}".strip()
        shown = self.text[: self.released]
        rest = response.text[len(shown):] if response.text.startswith(shown) and not shown_before_split else ""
        self.released = len(self.text)
        return reasoning, rest

    def _split_unopened_think(self) -> bool:
        """Reasoning models whose template opens <think> in the prompt write only the closing tag: the
        stream showed it as text already, but the answer the run keeps is without it. True when split."""
        if self._think == "in" or THINK_CLOSE not in self.text or THINK_OPEN in self.text:
            return False
        thought, _, answer = self.text.partition(THINK_CLOSE)
        self.reasoning += thought.strip()
        self.text = answer.strip()
        return True


def _partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """The length of the longest end of `text` that is the beginning of a marker (held back)."""
    if not markers:
        return 0
    starts = {m[0] for m in markers}
    for at in range(max(0, len(text) - max(len(m) for m in markers) + 1), len(text)):
        if text[at] in starts and any(m.startswith(text[at:]) for m in markers):
            return len(text) - at
    return 0


async def recover_calls(stream: AsyncIterator[Any], tools: list[ToolSpec], tool_format: str = "auto"
                        ) -> AsyncIterator[Any]:
    """A backend's stream with reasoning sorted out and tool calls written as text read back as calls."""
    reader = ReplyReader({spec.name: spec.parameters for spec in tools}, tool_format)
    async for item in stream:
        if isinstance(item, ReasoningChunk):
            reader.add_reasoning(item.text)
            yield item
        elif isinstance(item, TextChunk):
            reasoning, text = reader.feed(item.text)
            if reasoning:
                yield ReasoningChunk(reasoning)
            if text:
                yield TextChunk(text)
        elif isinstance(item, ModelResponse):
            reasoning, text = reader.finish(item)
            if reasoning:
                yield ReasoningChunk(reasoning)
            if text:
                yield TextChunk(text)
            yield item
        else:
            yield item
