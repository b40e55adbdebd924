"""The runner's own MCP stdio server (wire.py): the messages it answers and how, byte for byte on
its side; the official client's view of it is tested by every sandbox test (they all go through it)."""

import asyncio
import io
import json

import pytest

from plugdeck.plugins.sandbox.wire import WireServer

TOOLS = [{"name": "add", "description": "Add.", "inputSchema": {"type": "object"}}]


async def _exchange(*messages, call_tool=None) -> list[dict]:
    """Feed the server these lines (then end of input) and return what it wrote, in order."""
    async def default_call(name, arguments, meta):
        return {"content": [{"type": "text", "text": str(sum(arguments.values()))}], "isError": False}

    out = io.StringIO()
    server = WireServer("adder", "1.0", TOOLS, call_tool or default_call, out)
    reader = asyncio.StreamReader()
    serving = asyncio.create_task(server.serve(reader))
    for message in messages:
        reader.feed_data((message if isinstance(message, str) else json.dumps(message)).encode() + b"\n")
    await _settle(server)
    reader.feed_eof()  # the end of input cancels calls still running: let them finish first
    await serving
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def _settle(server: WireServer) -> None:
    for _ in range(50):  # the server reads what was fed...
        await asyncio.sleep(0)
    while server.running:  # ...and the calls it started answer
        await asyncio.sleep(0.01)


def _request(ident, method, params=None):
    return {"jsonrpc": "2.0", "id": ident, "method": method, **({"params": params} if params is not None else {})}


async def test_the_handshake_listing_and_a_call_with_its_meta():
    async def call(name, arguments, meta):
        await asyncio.sleep(0)
        return {"content": [{"type": "text", "text": f"{name} {arguments} {meta}"}], "isError": False}

    answers = await _exchange(
        _request(1, "server/discover"),
        _request(2, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "t", "version": "0"}}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        _request(3, "tools/list"),
        _request(4, "ping"),
        call_tool=call)
    assert answers[0] == {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601,
                                                               "message": "method not found: server/discover"}}
    assert answers[1]["result"] == {"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": False}},
                                    "serverInfo": {"name": "adder", "version": "1.0"}}
    assert answers[2] == {"jsonrpc": "2.0", "id": 3, "result": {"tools": TOOLS}}
    assert answers[3] == {"jsonrpc": "2.0", "id": 4, "result": {}}
    assert len(answers) == 4  # the notification is not answered


async def test_calls_run_concurrently_and_each_answer_carries_its_own_id():
    release = asyncio.Event()
    out = io.StringIO()

    async def call(name, arguments, meta):
        if arguments.get("wait"):
            await release.wait()
        return {"content": [{"type": "text", "text": meta.get("plugdeck/call", "")}], "isError": False}

    server = WireServer("adder", "1.0", TOOLS, call, out)
    reader = asyncio.StreamReader()
    serving = asyncio.create_task(server.serve(reader))
    reader.feed_data(json.dumps(_request("slow", "tools/call", {"name": "add", "arguments": {"wait": True},
                                                                "_meta": {"plugdeck/call": "a"}})).encode() + b"\n")
    reader.feed_data(json.dumps(_request(7, "tools/call", {"name": "add", "arguments": {},
                                                           "_meta": {"plugdeck/call": "b"}})).encode() + b"\n")
    for _ in range(50):
        await asyncio.sleep(0)
    first = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["id"], a["result"]["content"][0]["text"]) for a in first] == [(7, "b")]  # the fast one, not blocked
    release.set()
    await _settle(server)
    reader.feed_eof()
    await serving
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["id"], a["result"]["content"][0]["text"]) for a in answers] == [(7, "b"), ("slow", "a")]


async def test_a_cancelled_call_is_stopped_and_not_answered():
    started, stopped = asyncio.Event(), []
    out = io.StringIO()

    async def call(name, arguments, meta):
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(name)
            raise
        return {"content": [], "isError": False}

    server = WireServer("adder", "1.0", TOOLS, call, out)
    reader = asyncio.StreamReader()
    serving = asyncio.create_task(server.serve(reader))
    reader.feed_data(json.dumps(_request(5, "tools/call", {"name": "add"})).encode() + b"\n")
    await started.wait()
    reader.feed_data(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                 "params": {"requestId": 5, "reason": "timeout"}}).encode() + b"\n")
    reader.feed_data(json.dumps(_request(6, "ping")).encode() + b"\n")
    reader.feed_eof()
    await serving
    await asyncio.sleep(0)
    assert stopped == ["add"]
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"jsonrpc": "2.0", "id": 6, "result": {}}]


@pytest.mark.parametrize("line, code", [
    ("{not json", -32700),
    ('{"jsonrpc": "1.0", "id": 1, "method": "ping"}', -32600),
    ('[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600),
    ('{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}', -32602),
    ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}', -32602),
    ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": "x"}}', -32602),
])
async def test_bad_messages_get_the_json_rpc_error_and_the_server_goes_on(line, code):
    answers = await _exchange(line, _request(9, "ping"))  # a call's error may come after: calls are tasks
    assert [a["error"]["code"] for a in answers if "error" in a] == [code]
    assert {"jsonrpc": "2.0", "id": 9, "result": {}} in answers and len(answers) == 2


async def test_an_unknown_protocol_version_is_answered_with_the_newest_spoken():
    answers = await _exchange(_request(1, "initialize", {"protocolVersion": "1999-01-01"}))
    assert answers[0]["result"]["protocolVersion"] == "2025-11-25"


async def test_a_handler_that_raises_becomes_an_internal_error_for_that_call_only():
    async def call(name, arguments, meta):
        raise RuntimeError("runner bug")

    answers = await _exchange(_request(1, "tools/call", {"name": "add"}), _request(2, "ping"), call_tool=call)
    assert sorted(answers, key=lambda a: a["id"]) == [
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "RuntimeError: runner bug"}},
        {"jsonrpc": "2.0", "id": 2, "result": {}}]


LEAN = '''
import sys
from plugdeck import Plugin, tool


@tool
async def loaded() -> list:
    """Which heavy packages this runner process has imported."""
    return sorted({m.split(".")[0] for m in sys.modules} & {"mcp", "mcp_types", "anyio", "httpx", "pydantic_settings"})


plugin = Plugin(name="lean", tools=[loaded])
'''


async def test_the_runner_in_the_sandbox_serves_without_the_mcp_sdk(tmp_path):
    """The cold start's fix stays fixed: the official client on this side, no SDK on the other."""
    from plugdeck.plugins.sandbox.plugin import sandboxed_plugin
    from plugdeck.plugins.sandbox.settings import SandboxSettings

    site = tmp_path / "site"
    site.mkdir()
    site.chmod(0o755)
    (site / "lean_plugin.py").write_text(LEAN)
    plugin = sandboxed_plugin("lean_plugin:plugin", "lean", settings=SandboxSettings(), paths=[str(site)])
    try:
        assert await plugin.tool("loaded").call({}) == []
        assert plugin.runtime.connection.server_info == {"name": "lean", "version": "0.1.0"}
    finally:
        await plugin.close()
