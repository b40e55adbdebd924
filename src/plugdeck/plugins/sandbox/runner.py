"""`python -m plugdeck.plugins.sandbox.runner [--serve|--describe|--self-test] ENTRYPOINT`: the process
inside the sandbox.

--serve      load the plugin's entry point and serve its tools over MCP stdio (the platform's MCP
             client talks to it: tool pinning and timeouts apply as to any MCP server), with the
             runner's own small server (wire.py; --sdk: the MCP SDK's, kept to compare cold starts)
--describe   print the plugin's manifest (tools with schemas, effects, needs) as JSON and exit
--self-test  print what this process can see of the machine as JSON (the platform's start-up check)

Secrets the plugin declared come with each call, in the call's `_meta` (never in the environment
or argv), and are visible to the plugin's code only during that call: `plugdeck.sandbox.secret(NAME)`.
After each call every other process in the sandbox is killed: nothing a call starts outlives it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

SECRETS_META = "plugdeck/secrets"  # the call's _meta key holding {name: value}
CALL_META = "plugdeck/call"  # the call's _meta key holding its id
KILLED_META = "plugdeck/killed"  # the result's _meta key: processes left behind by the call
NO_SECCOMP = 4  # exit status: the allowlist could not be loaded, so no plugin code ran
JSON_META = "plugdeck/json"  # the result's _meta key: its text is the JSON of the tool's (non-text) value


def _load(entry_point: str, name: str):
    """Import `module:attribute.path` (an entry point's value; extras in brackets ignored) as a Plugin.
    Not through importlib.metadata, whose import alone costs the cold start ~15 ms."""
    import importlib

    from ..base import plugin_from

    module, _, attribute = entry_point.split("[", 1)[0].strip().partition(":")
    target = importlib.import_module(module.strip())
    for part in filter(None, attribute.strip().split(".")):
        target = getattr(target, part)
    return plugin_from(target, name=name)


def describe(plugin: Any) -> dict[str, Any]:
    return {**plugin.manifest(), "tools": [
        {"name": t.name, "description": t.description, "effect": t.effect, "timeout": t.timeout,
         "parameters": t.parameters, "untrusted": t.untrusted, "private": t.private,
         "capabilities": list(t.capabilities)} for t in plugin.tools]}


def kill_leftovers() -> int:
    """Kill every process in this PID namespace but this one (PID 1): daemons, forks, children."""
    killed = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    # Reap them (orphans are PID 1's children), so that they are gone and stop counting against
    # RLIMIT_NPROC before the call's answer is sent.
    import time

    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.005)
        except ChildProcessError:
            break
    return killed


def self_test() -> dict[str, Any]:
    """Facts for the platform's check: who we are, what we can reach, what /proc shows."""
    import errno
    import socket

    def reach(host: str, port: int) -> str:
        try:
            with socket.create_connection((host, port), timeout=1):
                return "connected"
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))

    def status_line(key: str) -> str:
        with open("/proc/self/status", encoding="ascii") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key + ":")), "")

    environs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environs[entry] = f.read().decode("utf-8", "replace")
            except OSError:
                pass
    return {"uid": os.getuid(), "euid": os.geteuid(), "pid": os.getpid(), "cap_eff": status_line("CapEff"),
            "cap_bnd": status_line("CapBnd"), "no_new_privs": status_line("NoNewPrivs"),
            "seccomp": status_line("Seccomp"), "unshare": _try_unshare(),
            "env": sorted(os.environ), "environs": environs, "root_home": _listing("/root"),
            "net_loopback": reach("127.0.0.1", 22), "net_outside": reach("192.0.2.1", 80)}


def _try_unshare() -> str:
    """What unshare(CLONE_NEWUSER) gives: a kernel door the seccomp filter must keep shut."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) == 0:
        return "allowed"
    import errno

    return errno.errorcode.get(ctypes.get_errno(), "failed")


def _listing(folder: str) -> list[str] | str:
    try:
        return sorted(os.listdir(folder))
    except OSError as exc:
        return type(exc).__name__


def tool_listing(plugin: Any) -> list[dict[str, Any]]:
    """The plugin's tools as MCP's tools/list gives them."""
    return [{"name": t.name, "description": t.description, "inputSchema": t.parameters,
             "annotations": {"readOnlyHint": t.effect == "read"}} for t in plugin.tools]


def call_handler(plugin: Any):
    """The tools/call handler: (name, arguments, _meta) -> a CallToolResult as a wire dict. The call's
    secrets and id are set around the tool; when no other call is running, every process left in the
    sandbox is killed and the count is said in the result's _meta."""
    from ...sandbox import _calling
    from ...tools import ToolError

    tools = {t.name: t for t in plugin.tools}
    in_flight = [0]  # calls running now

    async def call_tool(name: str, arguments: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        tool = tools.get(name)
        in_flight[0] += 1
        try:
            if tool is None:
                raise ToolError(f"no tool {name!r}", "unknown_tool")
            with _calling(meta.get(SECRETS_META) or {}, str(meta.get(CALL_META) or "")):
                output = await tool.call(arguments)
            result = _result(output)
        except ToolError as exc:
            result = _failed(f"{exc.kind}: {exc.message}")
        except MemoryError:
            result = _failed("memory_limit: the tool ran out of memory (its sandbox's limit)")
        except Exception as exc:  # the plugin's own bug: reported, the runner keeps serving
            result = _failed(f"tool_crashed: {type(exc).__name__}: {exc}")
        finally:
            in_flight[0] -= 1
        killed = kill_leftovers() if in_flight[0] == 0 else 0  # not while another call may own a child
        if killed:
            result["_meta"] = {**result.get("_meta", {}), KILLED_META: killed}
        return result

    return call_tool


async def serve(plugin: Any, protocol: Any) -> None:
    """MCP over stdio with the runner's own small server (wire.py): no SDK to import."""
    from .wire import WireServer, stdin_reader

    server = WireServer(plugin.name, plugin.version, tool_listing(plugin), call_handler(plugin), protocol)
    await server.serve(await stdin_reader())


async def serve_with_sdk(plugin: Any, protocol: Any) -> None:
    """The same, served by the MCP SDK's server (--sdk): kept to compare cold starts (bench/)."""
    import mcp_types as types

    from mcp.server import Server
    from mcp.server.stdio import stdio_server

    call_tool = call_handler(plugin)
    listing = [types.Tool.model_validate(t) for t in tool_listing(plugin)]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        result = await call_tool(params.name, params.arguments or {}, dict(params.meta or {}))
        return types.CallToolResult.model_validate(result)

    server = Server(plugin.name, version=plugin.version, on_list_tools=list_tools, on_call_tool=on_call_tool)
    async with stdio_server(stdout=protocol) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _result(value: Any) -> dict[str, Any]:
    """Text as text; anything else as JSON text, and as structured content when it is an object."""
    if isinstance(value, str):
        return {"content": [{"type": "text", "text": value}], "isError": False}
    text = json.dumps(value, ensure_ascii=False, default=str)
    result = {"content": [{"type": "text", "text": text}], "isError": False, "_meta": {JSON_META: True}}
    if isinstance(value, dict):
        result["structuredContent"] = json.loads(text)  # what the client receives: JSON's own types
    return result


def _failed(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plugdeck.plugins.sandbox.runner")
    mode = parser.add_mutually_exclusive_group(required=True)
    for flag in ("--serve", "--describe", "--self-test"):
        mode.add_argument(flag, dest="mode", action="store_const", const=flag[2:])
    parser.add_argument("--name", required=True)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--egress")
    parser.add_argument("--sdk", action="store_true", help="serve with the MCP SDK (for comparison)")
    parser.add_argument("entry_point")
    args = parser.parse_args(argv)
    sys.path[:0] = [p for p in args.path if p not in sys.path]
    if args.egress:
        from ...sandbox import http

        http.SOCKET = args.egress
    from .seccomp import SeccompUnavailable, install

    if args.mode == "self-test":
        try:
            install()
        except SeccompUnavailable as exc:
            print(f"no seccomp filter: {exc}", file=sys.stderr)
            return NO_SECCOMP
        print(json.dumps(self_test()))
        return 0
    # The protocol keeps the real stdout; what the plugin prints goes to stderr (the platform's log of it).
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    os.dup2(2, 1)
    if args.mode == "serve":  # what serving needs is imported before the filter closes in
        import asyncio  # noqa: F401

        if args.sdk:
            import anyio  # noqa: F401
            from mcp.server import Server  # noqa: F401
            from mcp.server.stdio import stdio_server  # noqa: F401
        else:
            from . import wire  # noqa: F401
    try:
        install()  # from here on, the allowlist: before any of the plugin's code runs
    except SeccompUnavailable as exc:
        print(f"no seccomp filter: {exc}", file=sys.stderr)
        return NO_SECCOMP
    # pydantic looks for its own plugins in every installed package's metadata on first use (~30 ms of
    # the cold start); inside the sandbox only the plugin's code is meant to run, so none are loaded.
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        plugin = _load(args.entry_point, args.name)
    except Exception as exc:
        print(f"could not load {args.entry_point}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    if args.mode == "describe":
        protocol.write(json.dumps(describe(plugin), default=str))
        protocol.flush()
        return 0
    if args.sdk:
        import anyio

        anyio.run(serve_with_sdk, plugin, anyio.wrap_file(protocol))
    else:
        import asyncio

        asyncio.run(serve(plugin, protocol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
