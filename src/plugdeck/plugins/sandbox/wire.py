"""The runner's side of MCP over stdio, without the MCP SDK (issue 14: a cold start under 300 ms).

JSON-RPC 2.0, one message per line, MCP's initialize handshake: `initialize` (answered with the
client's protocol version when it is one spoken here, else the newest), `notifications/initialized`,
`ping`, `tools/list`, `tools/call` (its `_meta` passed on), `notifications/cancelled`. Any other
request is answered -32601 (method not found): that is how a client's `server/discover` probe learns
to fall back to the handshake. The platform keeps the official client (plugins/mcp/client.py), so
every answer sent from here is parsed by the SDK's own models on the other side.

Why not the SDK here: importing it (pydantic, anyio, its types) took 0.9-2.4 s inside the sandbox, on
every cold start. This module imports only json and asyncio.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, TextIO

PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")  # the handshake's revisions
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
LINE_LIMIT = 64 * 1024 * 1024  # one message; a tool's arguments may be large, but not endless

# (tool name, arguments, the request's _meta) -> a CallToolResult as a wire dict
CallTool = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


class WireServer:
    """Serves one plugin's tools to one client over a pair of text streams."""

    def __init__(self, name: str, version: str, tools: list[dict[str, Any]], call_tool: CallTool, out: TextIO):
        self.info = {"name": name, "version": version}
        self.tools = tools
        self.call_tool = call_tool
        self.out = out
        self.running: dict[Any, asyncio.Task] = {}  # tools/call requests in flight, by request id

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer until the client closes stdin; calls still running then are cancelled."""
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than LINE_LIMIT: the rest of that line is lost with it
                    self._error(None, INVALID_REQUEST, f"message longer than {LINE_LIMIT} bytes")
                    break
                if not line:
                    break
                if line.strip():
                    self._receive(line)
        finally:
            for task in list(self.running.values()):
                task.cancel()

    def _receive(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._error(None, PARSE_ERROR, "not JSON")
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
            if isinstance(message, dict) and ("result" in message or "error" in message):
                return  # an answer to a request of ours: this server sends none
            self._error(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                        "not a JSON-RPC 2.0 request")
            return
        method, params, ident = message["method"], message.get("params") or {}, message.get("id")
        notification = "id" not in message
        if not isinstance(params, dict):
            if not notification:
                self._error(ident, INVALID_PARAMS, "params must be an object")
            return
        if notification:
            if method == "notifications/cancelled":
                task = self.running.get(params.get("requestId"))
                if task is not None:
                    task.cancel()  # and no answer is sent for it, as the protocol asks
            return  # notifications/initialized and any other: nothing to answer
        if method == "tools/call":
            if ident in self.running:
                self._error(ident, INVALID_REQUEST, "a request with this id is already running")
                return
            task = asyncio.get_running_loop().create_task(self._call(ident, params))
            self.running[ident] = task
            task.add_done_callback(lambda _, ident=ident: self.running.pop(ident, None))
        elif method == "initialize":
            asked = params.get("protocolVersion")
            self._answer(ident, {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1],
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": self.info,
            })
        elif method == "tools/list":
            self._answer(ident, {"tools": self.tools})
        elif method == "ping":
            self._answer(ident, {})
        else:
            self._error(ident, METHOD_NOT_FOUND, f"method not found: {method}")

    async def _call(self, ident: Any, params: dict[str, Any]) -> None:
        name, arguments, meta = params.get("name"), params.get("arguments") or {}, params.get("_meta") or {}
        if not isinstance(name, str) or not isinstance(arguments, dict) or not isinstance(meta, dict):
            self._error(ident, INVALID_PARAMS, "tools/call needs a tool name and, if any, arguments and _meta as objects")
            return
        try:
            result = await self.call_tool(name, arguments, meta)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the runner's own bug: said, and the runner keeps serving
            self._error(ident, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return
        self._answer(ident, result)

    def _answer(self, ident: Any, result: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "id": ident, "result": result})

    def _error(self, ident: Any, code: int, message: str) -> None:
        self._send({"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}})

    def _send(self, message: dict[str, Any]) -> None:
        # One line per message: json.dumps escapes every newline inside strings.
        self.out.write(json.dumps(message, ensure_ascii=False, default=str) + "\n")
        self.out.flush()


async def stdin_reader() -> asyncio.StreamReader:
    """This process's stdin (a pipe from the platform) as an asyncio stream."""
    import sys

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    return reader
