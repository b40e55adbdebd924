"""The `openai` backend: any server that speaks OpenAI's `/v1/chat/completions`.

That covers vLLM, Ollama, llama.cpp's server, LM Studio, TGI and the hosted APIs.

Retries (R28) happen only before the answer starts: connection errors, 408, 409, 429 and 5xx, with
exponential backoff and full jitter, honouring the server's Retry-After, all inside one deadline
per call. Streams are checked (R30): a turn counts only when it ends with a finish_reason and
`data: [DONE]`, so a cut-off answer or a half-written tool call is never handed on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, TypeVar

import httpx

from ..config import ConfigError
from ..redaction import redact, redact_value, register_secret
from ..retry import Backoff, retry_after
from ..tools import ToolSpec
from .base import ModelError, ModelResponse, ReasoningChunk, TextChunk, ToolCall
from .clients import ClientShards
from .reply_stream import recover_calls
from .token_estimate import estimate_usage
from .toolcall_parsers import ArgumentsError, parse_arguments

T = TypeVar("T")
RETRY_STATUSES = {408, 409, 429}  # and every 5xx
HINTS = {
    401: "Check the API key.",
    403: "Check the API key and that it may use this model.",
    404: "Check --base-url (it usually ends in /v1) and the model name.",
    429: "The server is rate limiting: wait, or send fewer requests.",
}
INCOMPLETE = "the answer would be incomplete, so it was not used"
TOOL_CHOICES = ("auto", "required", "none")
CONSTRAINTS = ("vllm", "llama.cpp")
REQUEST_SETTINGS = ("temperature", "top_p", "max_tokens", "seed", "stop")


class OpenAIModel:
    backoff_base = 0.5  # seconds before the first retry, before jitter; doubles each time
    backoff_cap = 8.0

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        stream: bool = True,
        deadline: float = 120.0,
        max_retries: int = 4,
        headers: dict[str, str] | None = None,
        temperature: float | None = None,
        name: str | None = None,
        client: httpx.AsyncClient | None = None,
        tool_format: str = "auto",
        send_reasoning: bool = False,
        tool_choice: str | None = None,
        constrain: str | None = None,
        settings: dict[str, Any] | None = None,
    ):
        self.model = model
        self.name = name or model
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.streaming = stream
        self.deadline = deadline
        self.max_retries = max_retries
        self.temperature = temperature
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers.update(headers or {})
        # Registered secrets are scrubbed from every error message, even when a server echoes them back.
        register_secret(api_key, f"API key of model {self.name}")
        for header, value in self._headers.items():
            if any(word in header.lower() for word in ("auth", "key", "token")):
                scheme, _, credential = value.partition(" ")  # "Bearer KEY": the key is the secret
                register_secret(credential if scheme.isalpha() and credential else value,
                                f"{header} header of model {self.name}")
        # A client of the caller's is used as it is; otherwise calls are spread over clients of our own.
        self._clients = ClientShards(per_client=1 << 30, make=lambda: client) if client else ClientShards()
        self._owns_client = client is None
        self._send_stream_options = True  # cleared for servers that reject it
        # How tool calls are read: the server's tool_calls, or (when it leaves them in the text) a text
        # format; "prompted" describes the tools in the prompt, and "auto" turns to that when the server
        # rejects `tools` (see models/prompted.py).
        self.tool_format = tool_format
        self._prompted = tool_format == "prompted"
        self.send_reasoning = send_reasoning
        # Sent as is when tools are offered: "auto", "required" (every turn must call) or "none".
        if tool_choice not in (None, *TOOL_CHOICES):
            raise ConfigError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)}, not {tool_choice!r}")
        if constrain not in (None, *CONSTRAINTS):
            raise ConfigError(f"constrain must be one of {', '.join(CONSTRAINTS)}, not {constrain!r}")
        self.tool_choice, self.constrain = tool_choice, constrain
        # Sampling and length settings (config.MODEL_SETTINGS, checked there), and extra_body's fields
        # sent as they are beside them.
        self.settings = {k: v for k, v in (settings or {}).items() if k in REQUEST_SETTINGS}
        self.extra_body = dict((settings or {}).get("extra_body") or {})

    def __repr__(self) -> str:
        return f"OpenAIModel(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ReasoningChunk | ModelResponse]:
        async for item in recover_calls(self._stream(messages, tools), tools, self.tool_format):
            if isinstance(item, ModelResponse):
                item.send_reasoning = self.send_reasoning
                if item.usage_estimated:  # no usage from the server: budgets still need a count
                    estimate_usage(item, messages, tools)
            yield item

    async def _stream(
        self, messages: list[dict[str, Any]], tools: list[ToolSpec]
    ) -> AsyncIterator[TextChunk | ReasoningChunk | ModelResponse]:
        deadline = asyncio.get_running_loop().time() + self.deadline
        response = await self._send(messages, tools, deadline)  # every retry happens in here
        try:
            if self.streaming:
                turn = StreamedTurn(self.url)
                async for data in self._events(response, deadline):
                    text = turn.add(data)
                    if turn.new_reasoning:
                        yield ReasoningChunk(turn.new_reasoning)
                    if text:
                        yield TextChunk(text)
                yield turn.response()
            else:
                result = parse_completion(await self._within(deadline, response.aread()), self.url)
                if result.reasoning:
                    yield ReasoningChunk(result.reasoning)
                if result.text:
                    yield TextChunk(result.text)
                yield result
        except ModelError as exc:
            raise self._error(str(exc)) from exc.__cause__
        finally:
            await self._clients.close(response)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._clients.aclose()

    async def __aenter__(self) -> OpenAIModel:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # ---- the request, with its retries ---------------------------------------------------------

    def _body(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> dict[str, Any]:
        # Whatever the conversation holds (a pasted key, history a client sent), a secret plugdeck holds
        # never leaves for the model server.
        if tools and self._prompted:
            from .prompted import prompted_messages

            messages = prompted_messages(messages, tools)
        body: dict[str, Any] = {"model": self.model, "messages": redact_value(messages), "stream": self.streaming}
        if tools and not self._prompted:
            body["tools"] = [spec.openai() for spec in tools]
        if tools and self.tool_choice and not self._prompted:
            body["tool_choice"] = self.tool_choice
        if tools and self.constrain and self.tool_choice == "required" and (self._prompted or self.tool_format == "json"):
            body.update(server_constraint(self.constrain, tools))
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.settings)
        body.update(self.extra_body)
        if self.streaming and self._send_stream_options:
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, messages: list[dict[str, Any]], tools: list[ToolSpec], deadline: float) -> httpx.Response:
        """POST the request, retrying what is worth retrying; return the open 2xx response."""
        attempts = 0
        while True:
            attempts += 1
            body = self._body(messages, tools)
            try:
                response = await self._post(body, deadline)
            except (TimeoutError, httpx.TimeoutException):
                raise self._error(
                    f"no answer from {self.url} within the {self.deadline:g}s deadline ({_attempts(attempts)})."
                    " The server may be overloaded or the model slow: check the server, or allow a longer deadline."
                ) from None
            except httpx.TransportError as exc:  # nothing was answered, so trying again is safe
                failure, wait, status = describe_connection_error(self.base_url, exc), None, None
                hint = "Is the server running? Check --base-url."
            else:
                if response.is_success:
                    return response
                status, detail = response.status_code, describe_error_body(response.content)
                if status == 400 and "stream_options" in body and "stream_options" in detail:
                    self._send_stream_options = False  # an older server: ask once more without it
                    continue
                refused = status in (400, 422) or (status == 500 and "--jinja" in detail)  # llama-server: a 500
                if refused and "tools" in body and self.tool_format == "auto" and "tool" in detail.lower():
                    self._prompted = True  # a server with no tool support: the tools go in the prompt
                    continue
                failure, hint = f"{self.url} answered HTTP {status}: {detail}", HINTS.get(status, "")
                if not _should_retry(response):
                    raise self._error(f"{failure}. {hint}".strip(), status)
                hint, wait = hint or "Check the server's logs.", retry_after(response.headers)
            if attempts > self.max_retries:
                raise self._error(f"{failure} (gave up after {_attempts(attempts)}). {hint}", status)
            wait = self._backoff(attempts) if wait is None else wait
            if asyncio.get_running_loop().time() + wait >= deadline:
                raise self._error(
                    f"{failure} (gave up after {_attempts(attempts)}: waiting {wait:.1f}s more would pass"
                    f" the {self.deadline:g}s deadline). {hint}"
                )
            await asyncio.sleep(wait)

    async def _post(self, body: dict[str, Any], deadline: float) -> httpx.Response:
        """One attempt. An error response is read whole, so its message can be shown."""
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.001)
        # httpx's timeouts apply per operation; asyncio's bounds the attempt as a whole. No cap on
        # connections: a server running hundreds of chats must not queue model calls.
        async with asyncio.timeout_at(deadline):
            response = await self._clients.send("POST", self.url, json=body, headers=self._headers, timeout=remaining)
            if not response.is_success:
                try:
                    await response.aread()
                finally:
                    await self._clients.close(response)
        return response

    def _backoff(self, attempt: int) -> float:
        return Backoff(self.backoff_base, self.backoff_cap, jitter="full").delay(attempt)

    # ---- reading the answer ------------------------------------------------------------------

    async def _events(self, response: httpx.Response, deadline: float) -> AsyncIterator[str]:
        decoder = SSEDecoder()
        pieces = response.aiter_bytes()
        while (piece := await self._within(deadline, anext(pieces, None))) is not None:
            for data in decoder.feed(piece):
                yield data
        for data in decoder.close():
            yield data

    async def _within(self, deadline: float, step: Awaitable[T]) -> T:
        """Await one read of the answer, inside the call's deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                return await step
        except (TimeoutError, httpx.TimeoutException):
            raise ModelError(
                f"the answer from {self.url} did not finish within the {self.deadline:g}s deadline; {INCOMPLETE}."
                " Allow a longer deadline, or ask for a shorter answer."
            ) from None
        except httpx.TransportError as exc:
            raise ModelError(
                f"the model's answer from {self.url} was cut off ({exc or type(exc).__name__}); {INCOMPLETE}."
                " Check the server's logs; a proxy in between may have closed the connection."
            ) from exc

    def _error(self, message: str, status: int | None = None) -> ModelError:
        return ModelError(redact(message), status=status)


def server_constraint(kind: str, tools: list[ToolSpec]) -> dict[str, Any]:
    """Request fields that make the server generate the reply under a JSON Schema of calls to `tools`
    (a JSON array of {"name", "arguments"}, read back as calls in the `json` format). Sent only on
    turns that must call a tool (tool_choice "required"), so the reply can be nothing else, and only
    where plugdeck reads the calls from the text (tool_format "prompted" or "json"): a server's own
    tool parser already constrains its calls, and two constraints at once may be refused.

    vllm: `structured_outputs` (vLLM 0.10+) and `guided_json` (older; newer ones ignore it).
    llama.cpp: its server's `json_schema`, which it turns into a grammar."""
    from .call_schema import calls_array_schema

    schema = calls_array_schema(tools)
    if kind == "vllm":
        return {"structured_outputs": {"json": schema}, "guided_json": schema}
    return {"json_schema": schema}


class SSEDecoder:
    """Turns bytes, split wherever the network split them, into the `data` of each server-sent event."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[str]:
        *lines, self._buffer = (self._buffer + piece).split(b"\n")
        events = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode(errors="replace")  # whole lines: no UTF-8 character is split
            if not line and self._data:  # a blank line ends an event
                events.append("\n".join(self._data))
                self._data = []
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
            # Comments (":" keep-alives) and the other fields (event, id, retry) carry nothing we use.
        return events

    def close(self) -> list[str]:
        """The last event, when the server ended without the blank line after it."""
        events = ["\n".join(self._data)] if self._data else []
        self._buffer, self._data = b"", []  # an unterminated line was cut off: it is not used
        return events


class StreamedTurn:
    """Collects one streamed answer from its `chat.completion.chunk`s."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}  # index -> id, name, argument pieces
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.reasoning: list[str] = []
        self.new_reasoning = ""  # what the latest event added to the reasoning

    def add(self, data: str) -> str:
        """Take one event's data; return the text it adds (often empty)."""
        if data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = _json_object(data)
        if chunk is None:
            raise ModelError(f"the stream from {self.url} sent an event that is not a JSON object: {data[:200]!r}")
        _raise_if_error(chunk, self.url)
        self.usage = chunk.get("usage") or self.usage
        text = self.new_reasoning = ""
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # one answer is asked for; ignore any other
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):  # null while a reasoning model thinks
                text += delta["content"]
            self.new_reasoning += _reasoning_of(delta)
            for call in delta.get("tool_calls") or []:
                self._add_call(call)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if text:
            self.text.append(text)
        if self.new_reasoning:
            self.reasoning.append(self.new_reasoning)
        return text

    def _add_call(self, delta: dict[str, Any]) -> None:
        index = delta.get("index")
        if index is None:  # some servers leave the index out: a new id starts a new call
            known = {c["id"] for c in self.calls.values()}
            index = len(self.calls) if (delta.get("id") not in known or not self.calls) else max(self.calls)
        call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        call["id"] = call["id"] or delta.get("id")
        function = delta.get("function") or {}
        call["name"] = call["name"] or function.get("name") or ""  # sent once; some servers repeat it
        arguments = function.get("arguments")
        if arguments:
            call["arguments"].append(arguments if isinstance(arguments, str) else json.dumps(arguments))

    def response(self) -> ModelResponse:
        missing = [what for what, seen in (("finish_reason", self.finish_reason), ("[DONE]", self.done)) if not seen]
        if missing:
            raise ModelError(
                f"the model's stream from {self.url} ended before it finished (no {' and no '.join(missing)});"
                f" {INCOMPLETE}. Check the server's logs; a proxy in between may have cut the stream."
            )
        calls = [(c["id"] or f"call_{i}", c["name"], "".join(c["arguments"])) for i, c in sorted(self.calls.items())]
        response = _response("".join(self.text), calls, self.finish_reason, self.usage)
        response.reasoning = "".join(self.reasoning)
        return response


def parse_completion(content: bytes, url: str) -> ModelResponse:
    """A non-streamed `chat.completion` body as a ModelResponse."""
    data = _json_object(content)
    if data is None:
        raise ModelError(f"{url} answered with something that is not a JSON object: {content[:300]!r}")
    _raise_if_error(data, url)
    choices = data.get("choices")
    if not choices:
        raise ModelError(f"{url} answered without any choices, so there is no answer to use: {str(data)[:300]}")
    message = choices[0].get("message") or {}
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        calls.append((call.get("id") or f"call_{i}", function.get("name", ""), function.get("arguments")))
    text = message.get("content") if isinstance(message.get("content"), str) else ""
    response = _response(text, calls, choices[0].get("finish_reason"), data.get("usage"))
    response.reasoning = _reasoning_of(message)
    return response


def _reasoning_of(message: dict[str, Any]) -> str:
    """A reasoning model's thinking: `reasoning_content` (vLLM, DeepSeek, llama.cpp, LM Studio) or
    `reasoning` (Ollama, OpenRouter)."""
    for key in ("reasoning_content", "reasoning"):
        if isinstance(message.get(key), str):
            return message[key]
    return ""


def _response(text: str, calls: list[tuple[str, str, Any]], finish_reason: str | None, usage: dict | None):
    counted = isinstance(usage, dict) and ("prompt_tokens" in usage or "completion_tokens" in usage)
    usage = usage if counted else {}
    return ModelResponse(
        text=text,
        tool_calls=[_tool_call(*call, truncated=finish_reason == "length") for call in calls],
        finish_reason=finish_reason,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count((usage.get("prompt_tokens_details") or {}).get("cached_tokens")),
        reasoning_tokens=_count((usage.get("completion_tokens_details") or {}).get("reasoning_tokens")),
        usage_estimated=not counted,  # OpenAIModel.stream estimates the counts (models/token_estimate.py)
    )


def _count(value: Any) -> int:
    """A token count from the usage object; anything but a whole number of 0 or more counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tool_call(call_id: str, name: str, raw: Any, truncated: bool) -> ToolCall:
    raw_text = raw if isinstance(raw, str) else "" if raw is None else json.dumps(raw)
    if truncated:
        # Closing the brackets of a cut-off call would invent its arguments ("1000" cut to "10").
        error = "the model ran out of output tokens while writing this call, so its arguments are incomplete"
        return ToolCall(call_id, name, None, raw_text, error)
    try:
        arguments, repaired = parse_arguments(raw)
    except ArgumentsError as exc:
        return ToolCall(call_id, name, None, raw_text, str(exc))
    return ToolCall(call_id, name, arguments, raw_text, repaired=repaired)


def _json_object(text: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _raise_if_error(data: dict[str, Any], url: str) -> None:
    if data.get("error"):
        raise ModelError(f"{url} reported an error: {describe_error_body(json.dumps(data).encode())}")


def _should_retry(response: httpx.Response) -> bool:
    forced = response.headers.get("x-should-retry")  # the server's own word wins
    if forced in ("true", "false"):
        return forced == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def describe_error_body(content: bytes) -> str:
    """The server's own words: OpenAI's `{"error": {"message"}}`, other common shapes, or the raw text."""
    data = _json_object(content)
    if data is not None:
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, data.get("message"), data.get("detail")):
            if isinstance(value, str) and value:
                return value
    return content.decode(errors="replace")[:300].strip() or "(an empty body)"


def describe_connection_error(base_url: str, exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        lowered = text.lower()
        if "refused" in lowered or "all connection attempts failed" in lowered:
            text = "connection refused"
        elif "name or service not known" in lowered or "nodename nor servname" in lowered:
            text = "the host name could not be resolved"
        return f"could not connect to {base_url}: {text}"
    return f"the connection to {base_url} failed before any answer came ({text})"
