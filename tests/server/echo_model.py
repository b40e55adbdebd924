"""A fast, stateless OpenAI-compatible model for load tests: stdlib asyncio HTTP/1.1 on 127.0.0.1.

    python tests/server/echo_model.py [--port 0] [--first-token-ms 20] [--chunk-ms 2]   # prints {"port": N}

Every answer is a pure function of the request, so concurrent conversations cannot borrow from each
other: a question carrying `canary N` gets a call of the calculator tool with `N + 0`; once the tool's
result is in the conversation, the answer is `canary <the tool's result>`, streamed in pieces. So
an answer holds its own canary only if the question, the tool call and the tool's result all
travelled through the same run. GET /stats gives the seconds the model spent on each canary
(from the request read to the last byte sent), to tell the model's time from the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import time
from collections import defaultdict

CANARY = re.compile(r"canary (\d+)")


class EchoModel:
    def __init__(self, first_token: float, chunk_delay: float):
        self.first_token = first_token
        self.chunk_delay = chunk_delay
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, body = request
                if method == "GET" and path == "/stats":
                    _send_json(writer, {"seconds": self.seconds, "calls": self.calls})
                elif method == "GET" and path == "/v1/models":
                    _send_json(writer, {"object": "list", "data": [{"id": "echo", "object": "model", "created": 0,
                                                                      "owned_by": "tests"}]})
                elif method == "POST" and path == "/v1/chat/completions":
                    await self.answer(json.loads(body), writer)
                else:
                    _send_json(writer, {"error": {"message": f"no route {method} {path}"}}, 404)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, body: dict, writer: asyncio.StreamWriter) -> None:
        started = time.perf_counter()
        messages = body["messages"]
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        found = CANARY.search(question or "")
        canary = found.group(1) if found else "none"
        tool = next((t["function"]["name"] for t in body.get("tools") or [] if "calculate" in t["function"]["name"]),
                    None)
        calls = []
        if messages[-1]["role"] == "tool":
            content = messages[-1]["content"]
            try:
                content = json.loads(content).get("result", content)
            except (ValueError, AttributeError):
                pass
            text = f"canary {content}"
        elif found and tool:
            text = ""
            calls = [{"index": 0, "id": f"call_{canary}", "type": "function",
                      "function": {"name": tool, "arguments": json.dumps({"expression": f"{canary} + 0"})}}]
        else:
            text = "There is no canary in this question."
        cid = f"chatcmpl-{canary}"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await asyncio.sleep(self.first_token)
        pieces = re.findall(r"\S+\s*", text)
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(self.chunk_delay)
            _chunk(writer, _delta(cid, {"content": piece}))
            await writer.drain()
        if calls:
            _chunk(writer, _delta(cid, {"tool_calls": calls}))
        _chunk(writer, _delta(cid, {}, "tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
            usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces) + 8 * len(calls),
                     "total_tokens": prompt + len(pieces) + 8 * len(calls)}
            _chunk(writer, {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": "echo",
                            "choices": [], "usage": usage})
        writer.write(_encode(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        self.seconds[canary] += time.perf_counter() - started
        self.calls[canary] += 1


async def _read_request(reader: asyncio.StreamReader):
    line = await reader.readline()
    if not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    length = 0
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _delta(cid: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": "echo",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def _encode(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _chunk(writer: asyncio.StreamWriter, data: dict) -> None:
    writer.write(_encode(b"data: " + json.dumps(data).encode() + b"\n\n"))


def _send_json(writer: asyncio.StreamWriter, data: dict, status: int = 200) -> None:
    payload = json.dumps(data).encode()
    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (status, len(payload), payload))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--chunk-ms", type=float, default=2.0)
    args = parser.parse_args()
    model = EchoModel(args.first_token_ms / 1000, args.chunk_ms / 1000)
    server = await asyncio.start_server(model.connection, "127.0.0.1", args.port, backlog=4096)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
