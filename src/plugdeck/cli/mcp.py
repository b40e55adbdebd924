"""MCP commands: `plugdeck mcp serve`, `plugdeck plugins add mcp`, and the bodies of
`plugdeck plugins diff NAME` / `plugdeck plugins approve NAME [TOOL]` (`diff_command`,
`approve_command`). Module-level imports stay light: this module loads with every CLI start."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn, Optional

import typer

group = typer.Typer(help="Serve plugdeck's plugins and agent to MCP clients.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


def _home():
    from ..config import load_config

    return load_config().home


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, var = value.partition("=")
        if not sep or not key or not var:
            _fail(f"{option} takes NAME=ENVVAR (the variable in your environment that holds the value), not {value!r}")
        pairs[key] = var
    return pairs


def _live_tools(name: str, options: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Start the server once; return its tool definitions and who it says it is."""
    import asyncio

    from ..plugins.mcp import spec_from_options
    from ..plugins.mcp.client import MCPConnection
    from ..tools import ToolError

    async def probe():
        connection = MCPConnection(spec_from_options(name, options))
        try:
            tools = await connection.list_tools()
            info = connection.server_info
            return tools, info
        finally:
            await connection.close()

    try:
        return asyncio.run(probe())
    except ToolError as exc:
        _fail(exc.message)
    except ValueError as exc:
        _fail(str(exc))


def _show_tools(tools: dict[str, dict[str, Any]], name: str) -> None:
    for tool_name, definition in tools.items():
        read_only = (definition.get("annotations") or {}).get("readOnlyHint") is True
        print(f"  {name}.{tool_name} ({'read' if read_only else 'write'})")
        print(f"    {definition.get('description') or definition.get('title') or '(no description)'}")
        print(f"    parameters: {json.dumps(definition.get('inputSchema') or {}, ensure_ascii=False)}")


def _entry(name: str) -> tuple[Any, dict[str, Any]]:
    from ..plugins import registry

    home = _home()
    entry = registry.configured(home).get(name)
    if entry is None or entry.get("kind") != "mcp":
        _fail(f"no MCP server named {name!r} was added (see: plugdeck plugins; add one with plugdeck plugins add mcp)")
    return home, entry.get("options") or {}


# ---- plugdeck plugins add mcp ---------------------------------------------------------------------


def add(
    name: str = typer.Option(..., "--name", help="The plugin name; its tools are called NAME.TOOL."),
    command: Optional[list[str]] = typer.Argument(None, help="After --: the server's command and arguments (stdio)."),
    url: Optional[str] = typer.Option(None, "--url", help="A Streamable HTTP server, e.g. http://127.0.0.1:9000/mcp."),
    env: Optional[list[str]] = typer.Option(None, "--env", help="VAR=ENVVAR: pass the server VAR, read from your ENVVAR (repeatable)."),
    header_env: Optional[list[str]] = typer.Option(None, "--header-env", help="HEADER=ENVVAR: send HEADER with the value of your ENVVAR (HTTP, repeatable)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds one tool call may take."),
) -> None:
    """Add an MCP server (a command after --, or --url) and approve the tools it offers now."""
    import shutil

    from ..plugins import registry
    from ..plugins.mcp import build_plugin
    from ..plugins.mcp.pinning import approve

    if bool(command) == bool(url):
        _fail("give the server's command after -- (plugdeck plugins add mcp --name time -- mcp-server-time) "
              "or its --url, not both")
    home = _home()
    if name in registry.configured(home):
        _fail(f"a plugin named {name!r} is already added; remove it first or choose another --name")
    if command:
        found = shutil.which(command[0])
        if found is None:
            _fail(f"the command {command[0]!r} was not found; install the server or give its full path")
        command = [found, *command[1:]]  # the exact program that was approved, not whatever PATH finds later
    options: dict[str, Any] = {"command": command, "url": url, "env": _pairs(env, "--env"),
                               "headers_env": _pairs(header_env, "--header-env"), "timeout": timeout}
    print(f"MCP server {name!r}: {' '.join(command) if command else url}")
    tools, info = _live_tools(name, options)
    options = approve({**options, "server_info": info}, tools)
    try:
        build_plugin(name, options)  # the name and options must make a plugin before they are stored
        registry.add(home, name, "mcp", options)
    except ValueError as exc:
        _fail(str(exc))
    print(f"approved {len(tools)} tool(s):")
    _show_tools(tools, name)
    print(f"If the server changes a tool later, plugdeck disables it until you approve the change "
          f"(plugdeck plugins diff {name}).")


# ---- plugdeck plugins diff / approve --------------------------------------------------------------


def diff_command(name: str = typer.Argument(..., help="The MCP server's plugin name.")) -> None:
    """Show how an MCP server's tools differ from what was approved (exit code 1 if they do)."""
    from ..plugins.mcp.pinning import diff, review

    _, options = _entry(name)
    live, _ = _live_tools(name, options)
    found = review(options.get("approved") or {}, live)
    approved = options.get("tools") or {}
    for tool_name in found.changed:
        print(diff(tool_name, approved.get(tool_name), live[tool_name]), end="")
    for tool_name in found.new:
        print(f"new tool {tool_name!r} (not approved, not offered to the model):")
        print(diff(tool_name, None, live[tool_name]), end="")
    for tool_name in found.removed:
        print(f"tool {tool_name!r} was approved but the server no longer offers it")
    if found.clean:
        print(f"no changes: the {len(found.unchanged)} tool(s) of {name!r} match what was approved")
        return
    print(f"approve with: plugdeck plugins approve {name} [TOOL]")
    raise typer.Exit(1)


def approve_command(
    name: str = typer.Argument(..., help="The MCP server's plugin name."),
    tool: Optional[str] = typer.Argument(None, help="One tool to approve; default: the server's whole tool list as it is now."),
) -> None:
    """Approve an MCP server's current tool definitions (after reviewing plugdeck plugins diff NAME)."""
    from ..plugins import registry
    from ..plugins.mcp.pinning import approve, review

    home, options = _entry(name)
    live, info = _live_tools(name, options)
    if tool is not None and tool not in live:
        _fail(f"MCP server {name!r} offers no tool {tool!r} (it offers: {', '.join(live) or 'none'})")
    found = review(options.get("approved") or {}, live)
    updated = approve({**options, "server_info": info}, live, [tool] if tool else None)
    registry.update(home, name, options=updated)
    touched = [tool] if tool else [*found.changed, *found.new]
    print(f"approved {', '.join(touched) or 'no changes'} for {name!r}"
          + (f"; dropped {', '.join(found.removed)}" if not tool and found.removed else ""))


# ---- plugdeck mcp serve -----------------------------------------------------------------------------


@group.command("serve")
def serve(
    http: Optional[int] = typer.Option(None, "--http", help="Serve Streamable HTTP on this port (0: any free port) instead of stdio."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind with --http. Default loopback only."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", "-p", help="Expose only these plugins (repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model `ask` uses. Default: rules (offline)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Any OpenAI-compatible endpoint for --model."),
    policy: Optional[str] = typer.Option(None, "--policy", help="A policy file (default: [policy] in plugdeck.toml)."),
    yes: bool = typer.Option(False, "--yes", help="Let the MCP client's own confirmation count as a person's OK "
                                                   "for calls the policy wants confirmed (default: refuse them)."),
) -> None:
    """Expose plugdeck's plugins (each tool) and its agent (the `ask` tool) to any MCP client."""
    import asyncio

    from .. import __version__
    from ..assemble import AgentSetup, SetupError, build_agent
    from ..config import ConfigError, load_config
    from ..ops.runstore import RunStore
    from ..plugins.mcp.server import build_server, serve_http, serve_stdio

    try:
        config = load_config({"model": model, "base_url": base_url})
        store = RunStore(config.run_store)
        agent = build_agent(config, AgentSetup(model=model, base_url=base_url, plugins=plugin, policy_path=policy),
                            confirm=(lambda action: True) if yes else None, sinks=[store.record],
                            warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    except (ConfigError, SetupError, ValueError) as exc:
        _fail(str(exc))
    server = build_server(agent, version=__version__, assume_yes=yes)
    if http is not None and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach it can call these tools (no authentication)",
              file=sys.stderr)

    def ready(url: str) -> None:
        print(f"plugdeck MCP server on {url} · {len(agent.tools)} tool(s) + ask", file=sys.stderr, flush=True)

    async def main() -> None:
        try:
            if http is None:
                await serve_stdio(server)
            else:
                await serve_http(server, host, http, on_ready=ready)
        finally:
            await agent.aclose()

    try:
        asyncio.run(main())
    except OSError as exc:
        _fail(f"cannot serve on {host}:{http}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


# Registered by cli/main.py as `plugdeck plugins diff` and `plugdeck plugins approve`.
plugins_commands = {"diff": diff_command, "approve": approve_command}
