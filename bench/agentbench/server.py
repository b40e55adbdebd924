"""The mock OpenAI-compatible server: stdlib asyncio HTTP/1.1 on 127.0.0.1, run as its own process.

    python -m bench.agentbench.server [--port 0] [--profile hosted] [--tool-call-tokens envelope]
    # prints {"port": N} when ready

POST /v1/chat/completions answers what `oracle.respond` decides, after the profile's latency:
streamed as OpenAI does (one `chat.completion.chunk` per token, tool calls as indexed deltas, a
usage chunk when `stream_options.include_usage` is set, `data: [DONE]`), or as one JSON body.
Tokens are counted here (`tokenizer.py`), never taken from the clients; a native tool call costs
the tokens of the JSON a model writes for it (`--tool-call-tokens envelope`, the default). Requests are attributed
to runs by the `[run NNNNNN]` tag at the start of the question.

Control endpoints for the harness: POST /agentbench/take {"tags": [...]} returns and forgets the
per-run statistics; POST /agentbench/profile {"name": ...} switches the latency profile;
POST /agentbench/tool-call-tokens {"style": ...} switches what a native tool call costs;
GET /agentbench/status gives the server's own CPU time and the most completions it answered at
once since the last look.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import sys
import time
from typing import Any

from . import oracle, tokenizer
from .profiles import PROFILES
from .tasks import all_tasks

MODEL = "agentbench-mock"


class Stats:
    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.inflight = self.peak_inflight = 0  # completions being answered at once

    def record(self, reply: oracle.Reply, prompt: int, completion: int, tools_digest: str | None,
               arrived: float, finished: float) -> None:
        self.requests += 1
        run = self.runs.setdefault(reply.tag or "untagged", {
            "task": reply.task_id, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "modes": {},
            "errors": [], "tools_digests": [], "first_arrival": arrived, "last_finish": finished})
        run["calls"] += 1
        run["prompt_tokens"] += prompt
        run["completion_tokens"] += completion
        run["modes"][reply.mode] = run["modes"].get(reply.mode, 0) + 1
        if reply.error:
            run["errors"].append(reply.error)
        if tools_digest and tools_digest not in run["tools_digests"]:
            run["tools_digests"].append(tools_digest)
        run["first_arrival"] = min(run["first_arrival"], arrived)
        run["last_finish"] = max(run["last_finish"], finished)

    def take(self, tags: list[str]) -> dict[str, Any]:
        return {tag: self.runs.pop(tag) for tag in tags if tag in self.runs}


class MockServer:
    def __init__(self, profile: str, tool_call_style: str = "envelope"):
        self.profile = PROFILES[profile]
        self.tool_call_style = tool_call_style
        self.tasks = all_tasks()
        self.stats = Stats()

    async def serve(self, port: int) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=4096)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                await self._route(method, path, body, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
        path = path.split("?", 1)[0]
        if method == "POST" and path.endswith("/chat/completions"):
            await self._completion(json.loads(body), writer)
        elif method == "GET" and path.endswith("/models"):
            _send_json(writer, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "agentbench"}]})
        elif method == "POST" and path == "/agentbench/take":
            _send_json(writer, self.stats.take(json.loads(body)["tags"]))
        elif method == "POST" and path == "/agentbench/profile":
            self.profile = PROFILES[json.loads(body)["name"]]
            _send_json(writer, self.profile.as_dict())
        elif method == "POST" and path == "/agentbench/tool-call-tokens":
            style = json.loads(body)["style"]
            if style not in tokenizer.TOOL_CALL_STYLES:
                _send_json(writer, {"error": {"message": f"unknown style {style!r}"}}, status="400 Bad Request")
            else:
                self.tool_call_style = style
                _send_json(writer, {"style": style})
        elif method == "GET" and path == "/agentbench/status":  # the peak starts again after each look
            _send_json(writer, {"cpu": time.process_time(), "requests": self.stats.requests,
                                "peak_inflight": self.stats.peak_inflight, "profile": self.profile.name,
                                "tool_call_tokens": self.tool_call_style})
            self.stats.peak_inflight = self.stats.inflight
        else:
            _send_json(writer, {"error": {"message": f"no route {method} {path}"}}, status="404 Not Found")
        await writer.drain()

    async def _completion(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        self.stats.inflight += 1
        self.stats.peak_inflight = max(self.stats.peak_inflight, self.stats.inflight)
        try:
            await self._answer(body, writer)
        finally:
            self.stats.inflight -= 1

    async def _answer(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        reply = oracle.respond(body, self.tasks)
        prompt = tokenizer.prompt_tokens(body, self.tool_call_style)
        units, completion = _units(reply, self.tool_call_style)
        profile = self.profile
        first_token_at = arrived + profile.ttft + profile.prefill * prompt
        digest = hashlib.sha256(json.dumps(body["tools"], sort_keys=True).encode()).hexdigest()[:12] \
            if body.get("tools") else None
        finish_reason = "tool_calls" if reply.tool_calls else "stop"
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await _stream(writer, units, first_token_at + max(completion - 1, 0) * profile.decode,
                          first_token_at, profile.decode, finish_reason, usage if include_usage else None)
        else:
            await _sleep_until(first_token_at + max(completion - 1, 0) * profile.decode)
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if reply.tool_calls:
                message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                                         for i, n, a in reply.tool_calls]
            _send_json(writer, {"id": "chatcmpl-agentbench", "object": "chat.completion", "created": 0,
                                "model": MODEL, "choices": [{"index": 0, "message": message,
                                                             "finish_reason": finish_reason}], "usage": usage})
        self.stats.record(reply, prompt, completion, digest, arrived, loop.time())


def _units(reply: oracle.Reply, style: str) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """The completion as (token index, delta) pairs, one delta per token, and its token count. A tool
    call's header (id and name) goes out with the last token before its arguments; the tokens of its
    envelope (see tokenizer.TOOL_CALL_STYLES) take decode time but carry no delta of their own."""
    units: list[tuple[int, dict[str, Any]]] = []
    index = 0
    for piece in tokenizer.pieces(reply.text):
        units.append((index, {"content": piece}))
        index += 1
    for position, (call_id, name, arguments) in enumerate(reply.tool_calls):
        head, tail = tokenizer.tool_call_parts(name, arguments, style)
        index += head
        units.append((index - 1, {"tool_calls": [{"index": position, "id": call_id, "type": "function",
                                                  "function": {"name": name, "arguments": ""}}]}))
        for piece in tokenizer.pieces(arguments):
            units.append((index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}))
            index += 1
        index += tail
    return units, index


_CHUNK = '{"id":"chatcmpl-agentbench","object":"chat.completion.chunk","created":0,"model":"' + MODEL + '","choices":'


def _event(delta: dict[str, Any] | None, finish_reason: str | None = None, usage: dict | None = None) -> bytes:
    if usage is not None:
        return f'data: {_CHUNK}[],"usage":{json.dumps(usage)}}}\n\n'.encode()
    choice = json.dumps({"index": 0, "delta": delta or {}, "finish_reason": finish_reason})
    return f"data: {_CHUNK}[{choice}]}}\n\n".encode()


async def _stream(writer: asyncio.StreamWriter, units: list[tuple[int, dict[str, Any]]], last_token_at: float,
                  first_token_at: float, decode: float, finish_reason: str, usage: dict | None) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    pending = [_event({"role": "assistant", "content": ""})]
    loop = asyncio.get_running_loop()
    k = 0
    while k < len(units):
        await _sleep_until(first_token_at + units[k][0] * decode)
        now = loop.time()
        while k < len(units) and first_token_at + units[k][0] * decode <= now:  # all that is due goes in one write
            pending.append(_event(units[k][1]))
            k += 1
        _write_chunk(writer, b"".join(pending))
        pending = []
        await writer.drain()
    await _sleep_until(last_token_at)  # envelope tokens after the last delta still take their time
    pending.append(_event({}, finish_reason))
    if usage is not None:
        pending.append(_event(None, usage=usage))
    pending.append(b"data: [DONE]\n\n")
    _write_chunk(writer, b"".join(pending))
    writer.write(b"0\r\n\r\n")


def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


async def _sleep_until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _send_json(writer: asyncio.StreamWriter, payload: Any, status: str = "200 OK") -> None:
    data = json.dumps(payload).encode()
    writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (status.encode(), len(data), data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="hosted")
    parser.add_argument("--tool-call-tokens", choices=tokenizer.TOOL_CALL_STYLES, default="envelope")
    args = parser.parse_args()
    try:
        asyncio.run(MockServer(args.profile, args.tool_call_tokens).serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
