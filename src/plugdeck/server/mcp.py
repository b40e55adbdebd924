"""plugdeck as an MCP server: `plugdeck mcp serve` (stdio) or `plugdeck mcp serve --http PORT`.

A surface, like the HTTP server and the CLI: it serves the agent, so it lives beside them and not
among the plugins (plugins.mcp is the other direction: MCP servers used as plugins).

Every tool of the given plugins is exposed under its qualified name (`calculator.calculate`) with
its JSON Schema, and `ask` runs plugdeck's agent on a question. Over HTTP the server binds to
127.0.0.1 unless told otherwise and, as the MCP transport spec requires against DNS rebinding,
refuses requests whose Origin is not a loopback origin (403) and whose Host is not one it serves
(421); plugdeck.loopback decides what is loopback, in front of the SDK's own transport security.
Once a plugdeck key exists (`plugdeck keys create`), every HTTP request needs one, as with
`plugdeck serve`; binding to an address that is not loopback needs a key first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any, Callable

from ..loopback import is_loopback_host, is_loopback_host_header, is_loopback_origin
from ..tools import Tool

ASK = "ask"
SERVER_NAME = "plugdeck"
_MCP_TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

ASK_DESCRIPTION = (
    "Ask plugdeck a question. Its agent breaks the question into steps and calls plugdeck's plugins "
    "(for example the exact calculator), then answers from their results."
)


def exposed_names(tools: list[Tool]) -> dict[str, Tool]:
    """MCP tool names (SEP-986: letters, digits, `_-.`, at most 128) for plugdeck's tools."""
    names: dict[str, Tool] = {}
    for tool in tools:
        name = tool.qualified_name
        if not _MCP_TOOL_NAME.match(name) or name in names or name == ASK:
            digest = hashlib.sha1(name.encode()).hexdigest()[:6]
            name = f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)[:120]}_{digest}"
        names[name] = tool
    return names


def build_server(agent: Any, *, version: str = "", assume_yes: bool = False):
    """An MCP server (the SDK's low-level `Server`) for the agent's tools, plus `ask` for the agent.

    Each call passes the agent's policy like a call the model makes. A call the policy wants a
    person to confirm is refused, unless `assume_yes`: then the MCP client's own confirmation
    (the MCP spec asks hosts to keep a person in the loop) counts as that person's OK.
    """
    import mcp_types as types
    from mcp_types import INVALID_PARAMS

    from mcp import MCPError
    from mcp.server import Server

    tools = agent.tools
    by_name = exposed_names(tools)
    listing = [
        types.Tool(
            name=name,
            description=tool.description,
            input_schema=tool.parameters,
            annotations=types.ToolAnnotations(read_only_hint=tool.effect == "read"),
        )
        for name, tool in by_name.items()
    ]
    listing.append(types.Tool(
        name=ASK,
        description=ASK_DESCRIPTION,
        input_schema={"type": "object", "properties": {"question": {
            "type": "string", "description": "The question, in plain words."}}, "required": ["question"]},
        annotations=types.ToolAnnotations(read_only_hint=all(t.effect == "read" for t in tools)),
    ))

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    async def call_tool(ctx: Any, params: Any) -> Any:
        arguments = params.arguments or {}
        if params.name == ASK:
            return await _ask(agent, arguments)
        tool = by_name.get(params.name)
        if tool is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
        return await call_through_policy(tool, arguments, agent.policy, assume_yes)

    from .mcp_resources import resource_handlers

    return Server(
        SERVER_NAME,
        version=version,
        instructions="Tools from plugdeck's plugins, and `ask`, which answers a question by letting "
                     "plugdeck's agent call them. The documents of its knowledge bases are resources (kb://).",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        **resource_handlers(agent, assume_yes),
    )


async def call_through_policy(tool: Tool, arguments: dict[str, Any], policy: Any, assume_yes: bool) -> Any:
    """Run one tool through the agent's own admission path (validation, policy, confirmation, timeout),
    as if the model had called it; the MCP client gets the result or the refusal."""
    finished = await run_through_policy(tool, arguments, policy, assume_yes)
    if finished.error:
        message = f"{finished.error['kind']}: {finished.error['message']}"
        if finished.error["kind"] == "rejected":
            message += (". plugdeck's policy wants a person to confirm this call; start `plugdeck mcp serve "
                        "--yes` to let the MCP client's own confirmation count")
        return _error(message)
    return _result(finished.result)


async def run_through_policy(tool: Tool, arguments: dict[str, Any], policy: Any, assume_yes: bool,
                             request: str = "tools/call") -> Any:
    """The agent's admission path for one call from the MCP client; returns the ToolFinished event."""
    from ..agent.executor import call_tool

    def confirm(action: Any) -> bool:
        return assume_yes

    confirm.label = "the MCP client (--yes)" if assume_yes else "no one to ask"
    return await call_tool(tool, arguments, policy=policy, confirmer=confirm,
                           question=f"mcp {request} {tool.qualified_name}", call_id="mcp")


async def _ask(agent: Any, arguments: dict[str, Any]) -> Any:
    question = arguments.get("question")
    if not isinstance(question, str) or not question.strip():
        return _error("invalid_arguments: give the question as a non-empty string in `question`")
    run = await agent.run(question)
    if run.status != "ok":
        return _error(f"{run.status}: {run.error or 'the run did not finish'} (run {run.id})")
    return _result(run.answer or "")


def _result(value: Any) -> Any:
    import mcp_types as types

    if isinstance(value, str):
        return types.CallToolResult(content=[types.TextContent(text=value)])
    text = json.dumps(value, ensure_ascii=False, default=str)
    structured = value if isinstance(value, dict) else None  # structuredContent is an object up to 2025-11-25
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


def _error(message: str) -> Any:
    import mcp_types as types

    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


# ---- transports ---------------------------------------------------------------------------------


async def serve_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def transport_security(host: str):
    """Loopback origins only; the Host header must name this server."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = [*LOOPBACK_HOSTS, *([] if host in LOOPBACK_HOSTS or host == "::1" else [host])]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[h for name in hosts for h in (name, f"{name}:*")],
        allowed_origins=[f"{scheme}://{name}{port}" for scheme in ("http", "https")
                         for name in LOOPBACK_HOSTS for port in ("", ":*")],
    )


def http_app(server: Any, host: str = "127.0.0.1", keys: Any = None, plugins: list[str] | None = None):
    """The Streamable HTTP app. With `keys` (plugdeck serve's KeyStore), once a key was ever made every
    request needs one, as `plugdeck serve` does, and it must allow every plugin this server exposes."""
    app = server.streamable_http_app(transport_security=transport_security(host), host=host)
    if keys is not None:
        app = _keyed(app, keys, plugins or [])
    return _loopback_only(app) if is_loopback_host(host) else app


def _keyed(app: Any, keys: Any, plugins: list[str]):
    from starlette.responses import JSONResponse

    def refuse(status: int, message: str) -> Any:
        return JSONResponse({"error": message}, status_code=status, headers={"WWW-Authenticate": "Bearer"})

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and keys.required():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            scheme, _, token = (headers.get("authorization") or "").partition(" ")
            key = keys.verify(token.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                return await refuse(401, "this MCP server needs a plugdeck key: send Authorization: Bearer KEY "
                                         "(create one with: plugdeck keys create --plugins NAMES)")(scope, receive, send)
            barred = [name for name in plugins if not key.allows(name)]
            if barred:
                return await refuse(403, f"key {key.name!r} may not use {', '.join(barred)}, which this MCP "
                                         "server exposes")(scope, receive, send)
        await app(scope, receive, send)

    return guarded


def _loopback_only(app: Any):
    """In front of the SDK's own check (whose `127.0.0.1:*` is a prefix match): bound to loopback, the
    Host must be a loopback name or address exactly (421 otherwise), and an Origin a loopback origin (403)."""
    from starlette.responses import PlainTextResponse

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            origin = headers.get("origin")
            if not is_loopback_host_header(headers.get("host")):
                return await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
            if origin is not None and not is_loopback_origin(origin):
                return await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
        await app(scope, receive, send)

    return guarded


async def serve_http(server: Any, host: str = "127.0.0.1", port: int = 8765,
                     on_ready: Callable[[str], None] | None = None, keys: Any = None,
                     plugins: list[str] | None = None) -> None:
    """Serve Streamable HTTP at http://HOST:PORT/mcp until cancelled; `on_ready` gets the URL.

    Port 0 picks a free port (the URL says which). A port that cannot be bound raises OSError.
    """
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    config = uvicorn.Config(http_app(server, host, keys, plugins), log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve(sockets=[sock]))
    try:
        while not web.started and not task.done():
            await asyncio.sleep(0.02)
        if web.started and on_ready:
            on_ready(f"http://{f'[{host}]' if ':' in host else host}:{bound}/mcp")
        await task
    finally:
        sock.close()
