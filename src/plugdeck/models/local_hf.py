"""The `hf` backend: a Hugging Face `transformers` model run in this process (`--model hf:PATH`).

PATH is a local folder with the model's config, weights and tokenizer (nothing is downloaded). The
prompt is the tokenizer's own chat template, given the offered tools (`apply_chat_template(tools=)`),
so each model family gets the tool format it was trained on. Generation is a plain token loop (one
forward pass per token with the key/value cache) run in a worker thread: text streams out as it is
decoded, and with the `local` extra's llguidance every token is chosen under a grammar built from the
tools' schemas (local_constraint.py), which has calls written the Hermes/Qwen way
(`<tool_call>{"name": ..., "arguments": ...}</tool_call>`). Calls are read back from the text, and
text that may be the start of a call held back, by the same reader as for servers
(reply_stream.recover_calls); without the grammar any family's format is read.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, AsyncIterator

from ..errors import UserError
from ..tools import ToolSpec
from .base import ModelError, ModelResponse, TextChunk
from .local_constraint import CALL_CLOSE

TOOL_CHOICES = ("auto", "required", "none")


class LocalModelError(UserError):
    """The local model's folder or settings cannot be used."""


class HFModel:
    def __init__(
        self,
        path: str | Path,
        *,
        constrain: bool = True,
        tool_choice: str = "auto",
        tool_format: str = "auto",
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        adapter: str | Path | None = None,
        name: str | None = None,
    ):
        self.path = Path(path).expanduser()
        # A LoRA adapter trained on this model (plugdeck tune), merged into its weights when it loads.
        self.adapter = Path(adapter).expanduser() if adapter else None
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            raise LocalModelError(f"{self.adapter} is not a LoRA adapter folder (no adapter_config.json): give the "
                                  "--out folder of plugdeck tune")
        if not (self.path / "config.json").is_file():
            raise LocalModelError(f"{self.path} is not a Hugging Face model folder (no config.json): give the "
                                  "folder that holds the model's config, weights and tokenizer")
        if tool_choice not in TOOL_CHOICES:
            raise LocalModelError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)}, not {tool_choice!r}")
        if max_new_tokens < 1 or temperature < 0:
            raise LocalModelError("max_new_tokens must be at least 1 and temperature at least 0")
        self.name = name or f"hf:{self.path}"
        from .toolcall_formats import TOOL_FORMATS

        if tool_format not in TOOL_FORMATS:
            raise LocalModelError(f"tool_format must be one of {', '.join(TOOL_FORMATS)}, not {tool_format!r}")
        self.constrain, self.tool_choice, self.tool_format = constrain, tool_choice, tool_format
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
                self._loaded = _load(self.path, self.adapter)
                if self.seed is not None:
                    import torch

                    self._generator = torch.Generator().manual_seed(self.seed)
            return self._loaded

    # ---- the Model interface ------------------------------------------------------------------

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ModelResponse]:
        from .reply_stream import recover_calls

        offered = tools if self.tool_choice != "none" else []
        # Under the grammar a call can only be written the Hermes way; without it, any family's format.
        tool_format = "hermes" if self.constrain and offered else self.tool_format
        async for item in recover_calls(self._raw_stream(messages, offered), offered, tool_format):
            yield item

    async def _raw_stream(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> AsyncIterator[Any]:
        """The generated text as it is decoded, then the whole turn (calls are read from it by the caller)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                emit(self._generate(messages, tools, emit, stop))
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
                    if len(decoded) > len(text):
                        emit(TextChunk(decoded[len(text):]))
                    text = decoded
                if constraint is not None and (constraint.finished or budget.no_room_for_another(constraint, text)):
                    finish = "stop"
                    break
                step_input = torch.tensor([[token]])
        final = tokenizer.decode(generated, skip_special_tokens=True)
        if len(final) > len(text):  # a last character that never completed
            emit(TextChunk(final[len(text):]))
        return ModelResponse(
            text=final,
            finish_reason=finish,
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


def _load(path: Path, adapter: Path | None = None) -> tuple[Any, Any, set[int]]:
    from ..extras import require

    require("local", f"the local model hf:{path}")
    if adapter is not None:
        require("tune", f"the adapter {adapter}")
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
    if adapter is not None:
        import warnings

        from peft import PeftModel

        try:
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x: not the user's business
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()  # merged: as fast as the base
        except (OSError, ValueError, RuntimeError) as exc:
            raise LocalModelError(f"could not load the adapter {adapter} onto {path}: {exc}") from exc
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


def hf_backend(name: str) -> HFModel:
    """The `plugdeck.models` entry point: `--model hf:PATH`, with settings after a `?` as in
    `hf:/models/qwen?constrain=off&tool_choice=required&max_new_tokens=256&temperature=0.7&seed=1`;
    `?adapter=DIR` adds a LoRA adapter made by `plugdeck tune`."""
    from urllib.parse import parse_qsl

    path, _, query = name.partition("?")
    if not path:
        raise LocalModelError("hf: needs a model folder, as in --model hf:/models/qwen2.5-0.5b-instruct")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)) if query else []:
        try:
            options[key] = _OPTIONS[key](value)
        except KeyError:
            raise LocalModelError(f"hf: knows no setting {key!r}; known: {', '.join(_OPTIONS)}") from None
        except ValueError:
            raise LocalModelError(f"hf: the setting {key}={value!r} is not valid") from None
    return HFModel(path, **options)


def _switch(value: str) -> bool:
    if value.lower() in ("1", "true", "on", "yes"):
        return True
    if value.lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(value)


_OPTIONS = {"constrain": _switch, "tool_choice": str, "tool_format": str, "max_new_tokens": int,
            "temperature": float, "seed": int, "adapter": str}
