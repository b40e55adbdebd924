"""The `hf` backend: a Hugging Face `transformers` model run in this process (`--model hf:PATH`).

PATH is a local folder with the model's config, weights and tokenizer (nothing is downloaded). The
prompt is the tokenizer's own chat template, given the offered tools (`apply_chat_template(tools=)`),
so each model family gets the tool format it was trained on. Generation is a plain token loop (one
forward pass per token with the key/value cache) run in a worker thread: text streams out as it is
decoded, and with the `local` extra's llguidance every token is chosen under a grammar built from the
tools' schemas (local_constraint.py). Tool calls are read back from the text in the Hermes/Qwen
format (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`), which the grammar also enforces.

Text that may be the start of a call is held back and never streamed as answer text.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from pathlib import Path
from typing import Any, AsyncIterator

from ..errors import UserError
from ..tools import ToolSpec
from .base import ModelError, ModelResponse, TextChunk, ToolCall
from .local_constraint import CALL_CLOSE, CALL_OPEN
from .toolcall_parsers import ArgumentsError, parse_arguments

TOOL_CHOICES = ("auto", "required", "none")
_CALL_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)
_ids = itertools.count(1)


class LocalModelError(UserError):
    """The local model's folder or settings cannot be used."""


class HFModel:
    def __init__(
        self,
        path: str | Path,
        *,
        constrain: bool = True,
        tool_choice: str = "auto",
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        name: str | None = None,
    ):
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise LocalModelError(f"{self.path} is not a Hugging Face model folder (no config.json): give the "
                                  "folder that holds the model's config, weights and tokenizer")
        if tool_choice not in TOOL_CHOICES:
            raise LocalModelError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)}, not {tool_choice!r}")
        if max_new_tokens < 1 or temperature < 0:
            raise LocalModelError("max_new_tokens must be at least 1 and temperature at least 0")
        self.name = name or f"hf:{self.path}"
        self.constrain, self.tool_choice = constrain, tool_choice
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self._loaded: tuple[Any, Any, set[int]] | None = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()  # one generation at a time: the model is not re-entrant
        self._generator: Any = None

    def __repr__(self) -> str:
        return f"HFModel({str(self.path)!r}, constrain={self.constrain}, tool_choice={self.tool_choice!r})"

    # ---- loading -----------------------------------------------------------------------------

    def load(self) -> tuple[Any, Any, set[int]]:
        """(model, tokenizer, end-of-turn token ids), loaded once (a few seconds for a real model)."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _load(self.path)
                if self.seed is not None:
                    import torch

                    self._generator = torch.Generator().manual_seed(self.seed)
            return self._loaded

    # ---- the Model interface ------------------------------------------------------------------

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ModelResponse]:
        offered = tools if self.tool_choice != "none" else []
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                emit(self._generate(messages, offered, emit, stop))
            except BaseException as exc:  # handed to the caller's task, which raises it
                emit(exc)

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    if isinstance(item, (UserError, ModelError)):
                        raise item
                    raise ModelError(f"the local model {self.name} failed: {type(item).__name__}: {item}") from item
                yield item
                if isinstance(item, ModelResponse):
                    return
        finally:
            stop.set()  # the caller stopped reading (or the run was cancelled): end the loop early
            await asyncio.shield(worker)

    # ---- generation (in a worker thread) -----------------------------------------------------------

    def _generate(self, messages: list[dict[str, Any]], tools: list[ToolSpec], emit, stop: threading.Event):
        import torch

        model, tokenizer, ends = self.load()
        prompt = _prompt_ids(tokenizer, messages, tools)
        constraint = self._constraint(tokenizer, tools)
        gate = _StreamGate(tools)
        generated: list[int] = []
        budget = _CallBudget(self.max_new_tokens, generated)
        text, finish = "", "length"
        cache_arg = _cache_argument(model)
        with self._generate_lock, torch.inference_mode():
            past, step_input = None, prompt
            for _ in range(self.max_new_tokens):
                if stop.is_set():
                    finish = "cancelled"
                    break
                out = model(input_ids=step_input, use_cache=True, **{cache_arg: past})
                past, logits = getattr(out, cache_arg), out.logits[0, -1].float()
                if constraint is not None:
                    allowed = torch.from_numpy(constraint.allowed())
                    masked = torch.full_like(logits, float("-inf"))
                    width = min(len(allowed), len(logits))
                    masked[:width] = torch.where(allowed[:width], logits[:width], masked[:width])
                    logits = masked
                token = self._pick(logits)
                if token in ends:
                    finish = "stop"
                    break
                if constraint is not None:
                    constraint.consume(token)
                generated.append(token)
                decoded = tokenizer.decode(generated, skip_special_tokens=True)
                if not decoded.endswith("\ufffd"):  # a character split over tokens waits for its rest
                    for piece in gate.feed(decoded[len(text):]):
                        emit(TextChunk(piece))
                    text = decoded
                if constraint is not None and (constraint.finished or budget.no_room_for_another(constraint, text)):
                    finish = "stop"
                    break
                step_input = torch.tensor([[token]])
        final = tokenizer.decode(generated, skip_special_tokens=True)
        for piece in gate.feed(final[len(text):]):  # a last character that never completed
            emit(TextChunk(piece))
        text = final
        calls = parse_tool_calls(text, truncated=finish == "length") if gate.held_call(text) else []
        if not calls:
            for piece in gate.release(text):
                emit(TextChunk(piece))
        return ModelResponse(
            text="" if calls else text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else finish,
            prompt_tokens=int(prompt.shape[-1]),
            completion_tokens=len(generated),
            served_by=self.name,
        )

    def _constraint(self, tokenizer: Any, tools: list[ToolSpec]):
        if not (self.constrain and tools):
            return None
        from .local_constraint import TokenConstraint, tool_call_grammar

        return TokenConstraint(tokenizer, tool_call_grammar(tools, required=self.tool_choice == "required"))

    def _pick(self, logits: Any) -> int:
        import torch

        if self.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._generator))


def _load(path: Path) -> tuple[Any, Any, set[int]]:
    from ..extras import require

    require("local", f"the local model hf:{path}")
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never reach for a hub
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise LocalModelError(f"could not load the model in {path}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise LocalModelError(f"the tokenizer in {path} has no chat template, so plugdeck cannot tell it how to "
                              "write a conversation or a tool call; use a chat (instruct) model")
    model.eval()
    ends = _end_ids(model, tokenizer)
    tokenizer.plugdeck_eos_ids = sorted(ends)  # the grammar's end-of-output tokens (local_constraint.py)
    return model, tokenizer, ends


def _cache_argument(model: Any) -> str:
    """The key/value cache's name in forward(): `cache` from transformers 5.x, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _end_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends the model's turn: the generation config's and the tokenizer's EOS."""
    ends: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ends.add(value)
        elif isinstance(value, (list, tuple)):
            ends.update(v for v in value if isinstance(v, int))
    if not ends:
        raise LocalModelError("the model names no end-of-sequence token, so a generation could never end")
    return ends


def _prompt_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: list[ToolSpec]):
    encoded = tokenizer.apply_chat_template(
        template_messages(messages), tools=[spec.openai() for spec in tools] or None,
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    return encoded["input_ids"]


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-format messages as chat templates expect them: call arguments as objects, text as text."""
    out = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        elif content is None:
            message["content"] = ""
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = dict(call.get("function") or {})
                if isinstance(function.get("arguments"), str):
                    try:
                        function["arguments"] = json.loads(function["arguments"])
                    except ValueError:
                        pass  # shown to the model as it wrote it
                calls.append({**call, "function": function})
            message["tool_calls"] = calls
        out.append(message)
    return out


class _CallBudget:
    """Ends the output after a complete call when the tokens left could not fit another as long as the
    longest so far: a call cut off by the token limit would be lost (the grammar allows the end there)."""

    def __init__(self, limit: int, generated: list[int]):
        self.limit, self.generated = limit, generated
        self.closed_at, self.longest, self.closes = 0, 0, 0

    def no_room_for_another(self, constraint: Any, text: str) -> bool:
        closes = text.count(CALL_CLOSE)
        if closes == self.closes or not constraint.matcher.is_accepting():
            return False
        self.closes = closes
        used = len(self.generated)
        self.longest, self.closed_at = max(self.longest, used - self.closed_at), used
        return self.limit - used < 2 * self.longest


class _StreamGate:
    """Streams answer text, holding back text that may turn out to be a tool call."""

    def __init__(self, tools: list[ToolSpec]):
        self.enabled = bool(tools)
        self.state = "undecided" if self.enabled else "text"  # -> "text" or "call"
        self.held = ""

    def feed(self, piece: str) -> list[str]:
        if self.state == "text":
            return [piece] if piece else []
        self.held += piece
        start = self.held.lstrip()
        if start.startswith(CALL_OPEN):
            self.state = "call"
        elif start and not CALL_OPEN.startswith(start):
            self.state, out, self.held = "text", self.held, ""
            return [out]
        return []

    def held_call(self, text: str) -> bool:
        return self.enabled and self.state != "text" and text.lstrip().startswith(CALL_OPEN)

    def release(self, text: str) -> list[str]:
        """What is still held back, once the whole output is known not to be calls."""
        out, self.held = self.held, ""
        return [out] if out else []


def parse_tool_calls(text: str, *, truncated: bool = False) -> list[ToolCall]:
    """The calls in an output that is nothing but `<tool_call>` blocks; [] when it is anything else.

    A block whose JSON cannot be read becomes a call with an error (the model is told why), unless the
    output was cut off by the token limit."""
    stripped = text.strip()
    if not stripped.startswith(CALL_OPEN):
        return []
    blocks = list(_CALL_BLOCK.finditer(stripped))
    rest = _CALL_BLOCK.sub("", stripped).strip()
    if rest and not (truncated or rest.startswith(CALL_OPEN)):
        return []  # calls mixed with text: ambiguous, so it stays text
    calls = [_block_call(block.group(1)) for block in blocks]
    if rest:  # an unclosed last block
        reason = ("the model ran out of output tokens while writing this call" if truncated
                  else "the call was not closed with </tool_call>")
        calls.append(ToolCall(f"call_{next(_ids)}", _name_in(rest), None, rest, reason))
    return calls


def _block_call(body: str) -> ToolCall:
    call_id = f"call_{next(_ids)}"
    try:
        data, _ = parse_arguments(body)
    except ArgumentsError as exc:
        return ToolCall(call_id, _name_in(body), None, body.strip(), f"the tool call is not valid JSON: {exc}")
    name, arguments = data.get("name"), data.get("arguments", data.get("parameters", {}))
    if not isinstance(name, str) or not name:
        return ToolCall(call_id, "", None, body.strip(), 'the tool call has no "name"')
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    try:
        parsed, repaired = parse_arguments(arguments if isinstance(arguments, (str, dict)) else raw)
    except ArgumentsError as exc:
        return ToolCall(call_id, name, None, raw, str(exc))
    return ToolCall(call_id, name, parsed, raw, repaired=repaired)


def _name_in(text: str) -> str:
    found = re.search(r'"name"\s*:\s*"([^"]+)"', text)
    return found.group(1) if found else ""


def hf_backend(name: str) -> HFModel:
    """The `plugdeck.models` entry point: `--model hf:PATH`."""
    if not name:
        raise LocalModelError("hf: needs a model folder, as in --model hf:/models/qwen2.5-0.5b-instruct")
    return HFModel(name)
