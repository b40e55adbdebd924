"""A mock OpenAI-compatible server: a real HTTP server on 127.0.0.1, driven by a queue of turns.

    from mock_openai import MockOpenAI

    with MockOpenAI(["Hello!", {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}]) as mock:
        model = OpenAIModel("mock-model", mock.base_url)   # base_url ends in /v1
        ...
        assert mock.requests[0]["stream"] is True          # the JSON bodies received, in order

Each POST /v1/chat/completions takes the next turn from the queue (`mock.add(...)` appends more;
`default=` answers when the queue is empty, otherwise an empty queue answers 500). A turn is text or
a dict with any of:

    text            the answer's text
    tool_calls      [{"name", "arguments": dict or raw string, "id" (optional)}]
    usage           {"prompt_tokens", "completion_tokens"} (otherwise words are counted), with any other
                    keys (prompt_tokens_details, completion_tokens_details) sent as given;
                    False: no usage at all, as some servers do
    finish_reason   defaults to "tool_calls" when there are tool calls, else "stop"
    fault           "429" (with Retry-After), "500" or any other HTTP status as a string;
                    "hang": accept the request and never answer until the server stops;
                    "abort_mid": send part of the answer, then close the socket mid-body;
                    "no_done": stream everything incl. finish_reason, but no `data: [DONE]`;
                    "no_finish": close cleanly with neither a finish_reason nor [DONE];
                    "bad_json_args": every tool call's arguments become `{"expression": "1+`
    message         the error message of an HTTP-status fault
    retry_after     seconds for a 429's Retry-After header (default: the server's `retry_after`)
    headers         extra response headers for an HTTP-status fault (e.g. {"x-should-retry": "true"})
    text_format     write the tool calls into the text in an open model's format instead of `tool_calls`,
                    as a server with its tool parser off sends them: one of TEXT_FORMATS (hermes,
                    llama3_json, python_tag, llama4_pythonic, mistral, mistral_v11, deepseek, deepseek_v31,
                    granite, json, qwen3_coder, glm45, kimi_k2, harmony, lmstudio)
    reasoning       a reasoning model's thinking, sent as `reasoning_content` before the text
    chunk           stream the text in pieces of this many characters (default: word by word)

Streams are shaped like OpenAI's: `chat.completion.chunk` objects, tool calls as deltas by index
(id and name first, the arguments split over several deltas), a usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`. Standard library only.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

STREAM_FAULTS = {"hang", "abort_mid", "no_done", "no_finish", "bad_json_args"}
DS = {word: f"<｜{word}｜>" for word in ("tool▁calls▁begin", "tool▁calls▁end", "tool▁call▁begin", "tool▁call▁end",
                                        "tool▁sep")}
BAD_ARGUMENTS = '{"expression": "1+'
_call_ids = itertools.count(1)  # tool-call ids unique across turns, as real servers make them


class MockOpenAI:
    def __init__(
        self,
        turns: Iterable[Any] = (),
        *,
        supports_tools: bool = True,
        no_tools_error: tuple[int, str] = (400, '"auto" tool choice requires --enable-auto-tool-choice'),
        supports_stream_options: bool = True,
        retry_after: float = 1,
        models: Iterable[str] = ("mock-model",),
        default: Any = None,
    ):
        turns = list(turns)
        for turn in [*turns, default]:
            _check(turn)
        self.turns = collections.deque(turns)
        self.default = default
        self.supports_tools = supports_tools  # False: a request with `tools` gets `no_tools_error` (vLLM's 400)
        self.no_tools_error = no_tools_error  # llama-server without --jinja: (500, "tools param requires --jinja flag")
        self.supports_stream_options = supports_stream_options  # False: `stream_options` gets a 400
        self.retry_after = retry_after
        self.models = list(models)
        self.requests: list[dict[str, Any]] = []  # POST bodies, in order
        self.headers: list[dict[str, str]] = []  # their request headers, in the same order
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._port: int | None = None
        self._served = 0

    @property
    def base_url(self) -> str:
        """Ends in /v1. Still readable after stop(), when it points at a closed port."""
        if self._port is None:
            raise RuntimeError("the mock server is not started (use `with MockOpenAI(...)` or .start())")
        return f"http://127.0.0.1:{self._port}/v1"

    def add(self, *turns: Any) -> None:
        for turn in turns:
            _check(turn)
        with self._lock:
            self.turns.extend(turns)

    def start(self) -> MockOpenAI:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.mock = self
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # releases "hang" handlers
        self._server.shutdown()
        with self._lock:
            for connection in self._connections:  # idle keep-alive connections would linger
                _shutdown(connection)
        self._server.server_close()
        self._server = None

    def __enter__(self) -> MockOpenAI:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _next_turn(self) -> tuple[dict[str, Any] | None, int]:
        with self._lock:
            turn = self.turns.popleft() if self.turns else self.default
            self._served += 1
            return (None if turn is None else _normalize(turn)), self._served


def render_stream(turn: Any, *, model: str = "mock-model", include_usage: bool = True, prompt_tokens: int = 0) -> bytes:
    """The complete SSE body the mock sends for a turn (for tests of stream parsers)."""
    chunks = _chunks(_normalize(turn), "chatcmpl-1", model, include_usage, prompt_tokens)
    return b"".join(_sse(chunk) for chunk in chunks) + b"data: [DONE]\n\n"


# ---- turns ---------------------------------------------------------------------------------------


def _check(turn: Any) -> None:
    if turn is None or isinstance(turn, str):
        return
    if not isinstance(turn, dict):
        raise TypeError(f"a mock turn is text or a dict, not {type(turn).__name__}")
    fault = turn.get("fault")
    if fault is not None and fault not in STREAM_FAULTS and not re.fullmatch(r"[45]\d\d", str(fault)):
        raise ValueError(f"unknown fault {fault!r}: use an HTTP status like '429' or one of {sorted(STREAM_FAULTS)}")


def _normalize(turn: Any) -> dict[str, Any]:
    turn = {"text": turn} if isinstance(turn, str) else dict(turn)
    calls = []
    for call in turn.get("tool_calls") or []:
        raw = call.get("arguments", {})
        if turn.get("fault") == "bad_json_args":
            raw = BAD_ARGUMENTS
        arguments = raw if isinstance(raw, str) else json.dumps(raw)
        call_id = call.get("id") or f"call_{next(_call_ids)}"
        calls.append({"id": call_id, "name": call["name"], "arguments": arguments})
    turn["tool_calls"] = calls
    turn.setdefault("text", "")
    if turn.get("text_format") and calls:  # the calls arrive as text, as from a server with its parser off
        written = render_calls(turn["text_format"], calls)
        turn["text"] = f"{turn['text']}{written}" if turn["text"] else written
        turn["tool_calls"] = calls = []
    turn.setdefault("finish_reason", "tool_calls" if calls else "stop")
    return turn


def render_calls(text_format: str, calls: list[dict[str, Any]]) -> str:
    """Tool calls written the way each model family's chat template documents them."""
    def obj(c, key="arguments"):
        return json.dumps({"name": c["name"], key: json.loads(c["arguments"] or "{}")})

    if text_format == "hermes":
        return "".join(f"<tool_call>\n{obj(c)}\n</tool_call>\n" for c in calls)
    if text_format == "llama3_json":
        return "; ".join(obj(c, "parameters") for c in calls)
    if text_format == "python_tag":
        return "<|python_tag|>" + "; ".join(obj(c, "parameters") for c in calls)
    if text_format == "llama4_pythonic":
        def py(c):
            args = ", ".join(f"{k}={v!r}" for k, v in json.loads(c["arguments"] or "{}").items())
            return f"{c['name']}({args})"
        return "[" + ", ".join(py(c) for c in calls) + "]"
    if text_format == "mistral":
        return "[TOOL_CALLS] " + json.dumps([json.loads(obj(c)) for c in calls])
    if text_format == "mistral_v11":
        return "".join(f"[TOOL_CALLS]{c['name']}[ARGS]{c['arguments']}" for c in calls)
    if text_format == "deepseek":
        body = "".join(f"{DS['tool▁call▁begin']}function{DS['tool▁sep']}{c['name']}\n```json\n{c['arguments']}\n```"
                       f"{DS['tool▁call▁end']}" for c in calls)
        return f"{DS['tool▁calls▁begin']}{body}{DS['tool▁calls▁end']}"
    if text_format == "deepseek_v31":
        body = "".join(f"{DS['tool▁call▁begin']}{c['name']}{DS['tool▁sep']}{c['arguments']}{DS['tool▁call▁end']}"
                       for c in calls)
        return f"{DS['tool▁calls▁begin']}{body}{DS['tool▁calls▁end']}"
    if text_format == "granite":
        return "<|tool_call|>" + json.dumps([json.loads(obj(c)) for c in calls])
    if text_format == "json":
        return obj(calls[0]) if len(calls) == 1 else json.dumps([json.loads(obj(c)) for c in calls])
    args = [(c["name"], json.loads(c["arguments"] or "{}")) for c in calls]
    if text_format == "qwen3_coder":  # strings as written, other values as JSON
        return "".join(f"<tool_call>\n<function={name}>\n" + "".join(
            f"<parameter={k}>\n{v if isinstance(v, str) else json.dumps(v)}\n</parameter>\n" for k, v in a.items())
            + "</function>\n</tool_call>\n" for name, a in args)
    if text_format == "glm45":
        return "".join(f"<tool_call>{name}\n" + "".join(
            f"<arg_key>{k}</arg_key>\n<arg_value>{v if isinstance(v, str) else json.dumps(v)}</arg_value>\n"
            for k, v in a.items()) + "</tool_call>" for name, a in args)
    if text_format == "kimi_k2":
        body = "".join(f"<|tool_call_begin|>functions.{c['name']}:{i}<|tool_call_argument_begin|>{c['arguments']}"
                       "<|tool_call_end|>" for i, c in enumerate(calls))
        return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"
    if text_format == "lmstudio":
        return "".join(f"[TOOL_REQUEST]{obj(c)}[END_TOOL_REQUEST]\n" for c in calls)
    if text_format == "harmony":
        return "<|channel|>analysis<|message|>A tool answers this.<|end|>" + "".join(
            f"<|start|>assistant<|channel|>commentary to=functions.{c['name']} <|constrain|>json<|message|>"
            f"{c['arguments']}<|call|>" for c in calls)
    raise ValueError(f"unknown text_format {text_format!r}; known: {', '.join(TEXT_FORMATS)}")


TEXT_FORMATS = ("hermes", "llama3_json", "python_tag", "llama4_pythonic", "mistral", "mistral_v11", "deepseek",
                "deepseek_v31", "granite", "json", "qwen3_coder", "glm45", "kimi_k2", "harmony", "lmstudio")


def _words(text: str) -> int:
    return len(text.split())


def _usage(turn: dict[str, Any], prompt_tokens: int) -> dict[str, Any] | None:
    if turn.get("usage") is False:
        return None
    usage = turn.get("usage") or {}
    completion = _words(turn["text"]) + sum(_words(c["arguments"]) for c in turn["tool_calls"])
    prompt = usage.get("prompt_tokens", prompt_tokens)
    completion = usage.get("completion_tokens", completion)
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        total += _words(str(content))
    return total


def _chunks(turn: dict[str, Any], cid: str, model: str, include_usage: bool, prompt_tokens: int) -> list[dict]:
    """The chat.completion.chunk objects of a streamed turn, in order, without [DONE]."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "system_fingerprint": None, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return data

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if turn.get("reasoning"):
        out += [chunk({"content": None, "reasoning_content": piece})
                for piece in re.findall(r"\s*\S+\s*", turn["reasoning"])]
    size = turn.get("chunk")
    pieces = ([turn["text"][i : i + size] for i in range(0, len(turn["text"]), size)] if size
              else re.findall(r"\s*\S+\s*", turn["text"]))
    out += [chunk({"content": piece}) for piece in pieces or []]
    for index, call in enumerate(turn["tool_calls"]):
        # The id and the whole name come first, then the arguments in pieces.
        head = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        out.append(chunk({"tool_calls": [head]}))
        arguments = call["arguments"]
        for start in range(0, len(arguments), 5):
            piece = {"index": index, "function": {"arguments": arguments[start : start + 5]}}
            out.append(chunk({"tool_calls": [piece]}))
    out.append(chunk({}, turn["finish_reason"]))
    if include_usage and _usage(turn, prompt_tokens) is not None:
        last = chunk({})
        last["choices"], last["usage"] = [], _usage(turn, prompt_tokens)
        out.append(last)
    return out


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _completion(turn: dict[str, Any], cid: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn["text"] or None, "refusal": None}
    if turn.get("reasoning"):
        message["reasoning_content"] = turn["reasoning"]
    if turn["tool_calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in turn["tool_calls"]
        ]
    completion = {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn["finish_reason"]}],
        "usage": _usage(turn, prompt_tokens),
    }
    if completion["usage"] is None:
        del completion["usage"]
    return completion


# ---- HTTP ----------------------------------------------------------------------------------------


def _shutdown(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mock: MockOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts, retries) are part of the tests, not errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like real servers
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.mock._lock:
            self.server.mock._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.mock._lock:
            self.server.mock._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route GET {self.path}")
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in self.server.mock.models]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        mock = self.server.mock
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "the request body is not JSON")
        mock.requests.append(body)
        mock.headers.append(dict(self.headers))
        if self.path != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}")
        if body.get("tools") and not mock.supports_tools:
            return self._error(*mock.no_tools_error)
        if "stream_options" in body and not mock.supports_stream_options:
            return self._error(400, "Unrecognized request argument supplied: stream_options")
        turn, number = mock._next_turn()
        if turn is None:
            return self._error(500, f"the mock server has no scripted turn left for request {number} (queue empty)")
        fault = str(turn.get("fault") or "")
        if re.fullmatch(r"\d+", fault):
            headers = {"Retry-After": str(turn.get("retry_after", mock.retry_after))} if fault == "429" else {}
            headers.update(turn.get("headers") or {})
            return self._error(int(fault), turn.get("message") or f"scripted fault {fault}", headers)
        if fault == "hang":
            mock._stopping.wait()
            self.close_connection = True
            return
        cid, model, prompt_tokens = f"chatcmpl-{number}", body.get("model", "mock-model"), _prompt_tokens(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(_chunks(turn, cid, model, include_usage, prompt_tokens), fault)
        else:
            payload = json.dumps(_completion(turn, cid, model, prompt_tokens)).encode()
            self._send(200, payload, "application/json", cut=fault == "abort_mid")

    def _stream(self, chunks: list[dict[str, Any]], fault: str) -> None:
        events = [_sse(chunk) for chunk in chunks] + [b"data: [DONE]\n\n"]
        if fault == "no_done":
            events = events[:-1]
        elif fault == "no_finish":
            events = [_sse(c) for c in chunks if c["choices"] and not c["choices"][0]["finish_reason"]]
        elif fault == "abort_mid":
            events = events[: max(2, len(events) // 2)]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        if fault == "abort_mid":
            _shutdown(self.connection)  # no terminating chunk: the body is cut off mid-stream
        else:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = fault in ("abort_mid", "no_done", "no_finish")

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers=headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None,
              cut: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if cut:  # promise the whole body, send half, hang up
            self.wfile.write(payload[: len(payload) // 2])
            _shutdown(self.connection)
            self.close_connection = True
            return
        self.wfile.write(payload)
