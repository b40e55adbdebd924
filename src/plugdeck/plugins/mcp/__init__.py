"""MCP servers as plugins: `plugdeck plugins add mcp --name time -- mcp-server-time`.

A server's approved tools become the tools of a plugin named after it. The tool list comes from
the approved definitions kept in the registry, so a CLI start never waits for a server; the
server starts on the first call, and its live definitions are checked against the approved hashes
then (`pinning`). MCP results come from outside: the tools are marked untrusted, and a tool is
`read` only if its approved annotations say `readOnlyHint: true`, otherwise `write`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...tools import Tool, ToolError, tool_from_schema
from ..base import Plugin
from .client import CONNECT_TIMEOUT, MCPConnection, ServerSpec, result_to_output
from .pinning import Pins, approve

__all__ = ["build_plugin", "mcp_plugin", "spec_from_options"]

DEFAULT_TIMEOUT = 30.0  # seconds per tool call


def spec_from_options(name: str, options: dict[str, Any]) -> ServerSpec:
    command = options.get("command")
    if isinstance(command, str):
        command = [command]
    if command and options.get("sandbox"):  # added with --sandbox: its program runs in plugdeck's sandbox
        from ..sandbox.servers import sandboxed_server_command

        command = sandboxed_server_command(name, list(command))
    return ServerSpec(
        name=name,
        command=list(command) if command else None,
        env=dict(options.get("env") or {}),
        url=options.get("url"),
        headers_env=dict(options.get("headers_env") or {}),
        oauth=bool(options.get("oauth")),
    )


def build_plugin(name: str, options: dict[str, Any], home: Path | None = None) -> Plugin:
    """The registry's builder: a Plugin from an added server's options, without starting it."""
    connect_timeout = float(options.get("connect_timeout") or CONNECT_TIMEOUT)
    connection = MCPConnection(spec_from_options(name, options), connect_timeout=connect_timeout)
    return _plugin(name, options, connection)


async def mcp_plugin(
    name: str,
    *,
    command: list[str] | None = None,
    url: str | None = None,
    env: dict[str, str] | None = None,
    headers_env: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    allow_flagged: bool = False,
) -> Plugin:
    """For Python code: connect, approve the tools the server offers now, return the plugin.

    The definitions seen now are pinned: if the server changes one later in this process, that
    tool is refused like any other unapproved change. The session stays open for the calls.
    Definitions the metadata scanner flags high are not approved unless `allow_flagged` (R13).
    """
    from ..scan import ToolText, blocking, report, scan_tools

    options: dict[str, Any] = {"command": command, "url": url, "env": env or {}, "headers_env": headers_env or {},
                               "timeout": timeout}
    connection = MCPConnection(spec_from_options(name, options))
    live = await connection.list_tools()
    high = blocking(scan_tools(ToolText.from_mcp(d) for d in live.values()))
    if high and not allow_flagged:
        await connection.close()
        raise ValueError(f"MCP server {name!r} was not approved: the metadata scanner found what reads like hidden "
                         f"instructions to the model:\n{report(high)}\nPass allow_flagged=True to approve it anyway.")
    options = approve({**options, "server_info": connection.server_info}, live)
    plugin = _plugin(name, options, connection)
    connection.on_tools(live)  # the session is already open: the pins see the listing it started with
    return plugin


def _plugin(name: str, options: dict[str, Any], connection: MCPConnection) -> Plugin:
    pins = Pins(name, options)
    connection.on_tools = pins.observe
    spec = connection.spec
    timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
    tools = [
        _tool(connection, pins, pins.definitions[tool_name], timeout)
        for tool_name in sorted(pins.approved)
        if tool_name in pins.definitions
    ]
    if options.get("resources"):  # it declared resources when approved: the model may read them
        from .resources import resource_tools

        tools += resource_tools(connection, timeout, {t.name for t in tools}, pins.check_server)
    info = options.get("server_info") or {}
    secrets = sorted({*spec.env.values(), *spec.headers_env.values()})
    return Plugin(
        name=name,
        tools=tools,
        version=str(info.get("version") or "0"),
        description=f"MCP server {info.get('name') or name}: {spec.where}",
        source=f"mcp server: {spec.where}",
        needs={"mcp": {"url": spec.url} if spec.url else {"command": spec.command}, "secrets": secrets},
        close=connection.close,
    )


def _tool(connection: MCPConnection, pins: Pins, definition: dict[str, Any], timeout: float) -> Tool:
    mcp_name = definition["name"]
    read_only = (definition.get("annotations") or {}).get("readOnlyHint") is True

    async def call(**arguments: Any) -> Any:
        pins.check_server()
        result = await connection.call(mcp_name, arguments, timeout, guard=pins.guard)
        try:
            return connection.redact(result_to_output(connection.name, mcp_name, result))
        except ToolError as exc:
            raise ToolError(connection.redact(exc.message), exc.kind) from None

    return tool_from_schema(
        mcp_name,
        definition.get("description") or definition.get("title") or mcp_name,
        definition.get("inputSchema"),
        call,
        effect="read" if read_only else "write",
        timeout=timeout + 2,  # our own timeout fires first, with a message naming the server
        untrusted=True,
        egress=f"mcp:{connection.name}",  # the server decides where arguments go from there
    )
